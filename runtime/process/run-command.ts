import { execFile } from 'node:child_process';

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** Thrown when a helper program fails; the message names the command and its stderr. */
export class CommandError extends Error {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(command: string, exitCode: number | null, stderr: string, cause?: unknown) {
    const tail = stderr.trim().split('\n').slice(-5).join('\n');
    super(
      `${command} failed${exitCode === null ? '' : ` with exit code ${exitCode}`}${tail ? `: ${tail}` : ''}`,
      { cause },
    );
    this.name = 'CommandError';
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** Runs a short-lived helper program to completion and returns its output. */
export function runCommand(
  file: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; maxBuffer?: number } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        cwd: options.cwd,
        env: options.env,
        maxBuffer: options.maxBuffer ?? 16 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          const code = typeof err.code === 'number' ? err.code : null;
          reject(new CommandError([file, ...args].join(' '), code, stderr || err.message, err));
          return;
        }
        resolve({ stdout, stderr });
      },
    );
  });
}
