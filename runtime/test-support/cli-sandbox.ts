import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export const EDGEBOX_BIN = fileURLToPath(new URL('../../bin/edgebox.js', import.meta.url));

export interface RunningCli {
  child: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

/** `edgebox sandbox run --rootfs ROOTFS --accel ACCEL -- sh -c SCRIPT`, run directories under `runRoot`. */
export function spawnSandboxRun(
  rootfs: string,
  runRoot: string,
  options: { accel: 'auto' | 'tcg'; script: string; stderr: 'pipe' | 'inherit' },
): RunningCli {
  const child = spawn(
    process.execPath,
    [EDGEBOX_BIN, 'sandbox', 'run', '--rootfs', rootfs, '--accel', options.accel].concat([
      '--',
      'sh',
      '-c',
      options.script,
    ]),
    {
      env: { ...process.env, EDGEBOX_RUN_DIR: runRoot },
      stdio: ['ignore', 'pipe', options.stderr],
    },
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { child, exited };
}

/**
 * A container that prints "up" and then sleeps; resolves once "up" has
 * arrived, so the VM and its helpers are running.
 */
export async function startSleepingSandbox(
  rootfs: string,
  runRoot: string,
  stderr: 'pipe' | 'inherit' = 'pipe',
): Promise<RunningCli> {
  const running = spawnSandboxRun(rootfs, runRoot, {
    accel: 'tcg',
    script: 'echo up; exec sleep 1000',
    stderr,
  });
  let err = '';
  running.child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    running.child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('up')) resolve();
    });
    void running.exited.then((code) =>
      reject(new Error(`sandbox run exited (${code}) before its container was up: ${err}`)),
    );
  });
  return running;
}

/** Direct children of a process, from /proc. */
export async function childPids(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.trim().split(/\s+/).filter(Boolean).map(Number);
}
