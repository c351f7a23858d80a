import { execFileSync } from 'node:child_process';

/** Runs a packaging tool; its failure names the command and what it printed. */
export function runTool(
  command: string,
  args: readonly string[],
  options: { cwd?: string } = {},
): string {
  try {
    return execFileSync(command, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
      ...options,
    });
  } catch (err) {
    const e = err as { stderr?: string; code?: string; message: string };
    const why =
      e.code === 'ENOENT'
        ? 'not installed (.ci/apt-packages lists it)'
        : e.stderr?.trim() || e.message;
    throw new Error(`${command} ${args.join(' ')}: ${why}`, { cause: err });
  }
}
