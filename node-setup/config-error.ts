import { CliError } from '../src/cli-error.ts';

/**
 * A node file `edgebox node enable` cannot read or rewrite safely, named with
 * the line and column where the problem is (when there is one). Nothing has
 * been changed when it is thrown: every file is checked before any is written.
 */
export class NodeFileError extends CliError {
  constructor(file: string, problem: string, position?: { line: number; column: number }) {
    super(
      `${position ? `${file}:${position.line}:${position.column}` : file}: ${problem}; nothing was changed`,
    );
    this.name = 'NodeFileError';
  }
}
