import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { registerHubCommands } from '../edge-hub/command.ts';
import { registerEcmCommands } from '../controllers/command.ts';
import { ConfigError } from './config/load.ts';
import { registerSandboxCommands } from '../runtime/command.ts';

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

function packageVersion(): string {
  // The sources run from src/, the compiled build from dist/src/.
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'edgebox' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

/** Builds the `edgebox` command tree. Each part adds its own subcommands here. */
export function buildProgram(): Command {
  const program = new Command('edgebox')
    .description(
      'Keeps Kubernetes edge nodes working when the control plane is unreachable,\n' +
        'and runs untrusted pods in their own microVM.',
    )
    .version(packageVersion(), '-V, --version', 'print the edgebox version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerHubCommands(program);
  registerSandboxCommands(program);
  registerEcmCommands(program);
  return program;
}

/** Runs the CLI and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end in a CommanderError with exit code 0.
      return err.exitCode;
    }
    if (err instanceof CliError || err instanceof ConfigError) {
      process.stderr.write(`edgebox: ${err.message}\n`);
      return err instanceof CliError ? err.exitCode : 2;
    }
    process.stderr.write(`edgebox: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
