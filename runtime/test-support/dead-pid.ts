import { spawn } from 'node:child_process';

/** A pid that is certainly not running: a child that has exited and been reaped. */
export async function deadPid(): Promise<number> {
  const child = spawn('true');
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid ?? 0;
}
