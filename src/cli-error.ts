/**
 * An error meant for the person at the terminal: printed as one line,
 * `edgebox: <message>`, with a non-zero exit code and no stack trace.
 */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}
