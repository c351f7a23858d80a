import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { CliError } from './cli-error.ts';

export { CliError } from './cli-error.ts';

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

type RegisterCommands = (program: Command) => void;

/**
 * The parts, by their top-level command. Each is imported only when needed:
 * a per-pod `edgebox sandbox run` must not pay for another part's imports
 * (the ECM's config loader brings yaml, for one), since every byte it holds is
 * held once per pod.
 */
const PARTS: readonly { command: string; load: () => Promise<RegisterCommands> }[] = [
  {
    command: 'hub',
    load: async () => (await import('../edge-hub/command.ts')).registerHubCommands,
  },
  {
    command: 'sandbox',
    load: async () => (await import('../runtime/command.ts')).registerSandboxCommands,
  },
  {
    command: 'ecm',
    load: async () => (await import('../controllers/command.ts')).registerEcmCommands,
  },
  {
    command: 'node',
    load: async () => (await import('../node-setup/command.ts')).registerNodeCommands,
  },
];

/**
 * Builds the `edgebox` command tree. Each part adds its own subcommands here.
 * With `argv`, only the part its first argument names is loaded (all of them
 * for --help, --version or anything unknown, so help and suggestions stay whole).
 */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command('edgebox')
    .description(
      'Keeps Kubernetes edge nodes working when the control plane is unreachable,\n' +
        'and runs untrusted pods in their own microVM.',
    )
    .version(packageVersion(), '-V, --version', 'print the edgebox version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const named = PARTS.find((part) => part.command === argv?.[2]);
  for (const part of named ? [named] : PARTS) (await part.load())(program);
  return program;
}

/** Runs the CLI and returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end in a CommanderError with exit code 0.
      return err.exitCode;
    }
    if (err instanceof CliError) {
      process.stderr.write(`edgebox: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`edgebox: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
