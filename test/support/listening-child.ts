import { spawn, type ChildProcess } from 'node:child_process';

/**
 * Runs Node with `nodeArgs` (a file, or `-e` and a script, then arguments)
 * in a child process that prints the port it listens on as its first line
 * of output; resolves with both.
 */
export async function listeningChild(
  nodeArgs: readonly string[],
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, nodeArgs, {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the listening child exited with ${code}`)));
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
  });
  return { child, port };
}
