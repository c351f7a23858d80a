import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../process/alive.ts';
import { parseIdentity, sameProcessRunning } from '../process/identity.ts';
import { runCommand } from '../process/run-command.ts';
import { removeRecordedCgroup } from '../sandbox/host-cgroup.ts';
import { mountsUnder } from '../sharing/share.ts';

/**
 * What `shim delete` does for a pod whose shim died: SIGKILL the helper
 * processes named by the run directory's pid files (only the very processes
 * they name, by pid and start time, so a reused pid is never hit),
 * unmount everything below it and remove it.
 */
export async function cleanupPodRunDir(runRoot: string, podId: string): Promise<void> {
  const dir = join(runRoot, podId);
  const files = await readdir(dir).catch(() => [] as string[]);
  const killed: number[] = [];
  for (const file of files.filter((f) => f.endsWith('.pid'))) {
    const identity = parseIdentity(await readFile(join(dir, file), 'utf8').catch(() => ''));
    if (!identity) continue;
    const { pid, startTime } = identity;
    // The same process (pid and start time), or with a bare pid, one whose command line names the directory.
    const same =
      startTime === undefined
        ? (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes(dir)
        : await sameProcessRunning({ pid, startTime });
    if (!same) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // Already gone.
    }
  }
  // Not our children: poll until the kernel has taken them away (SIGKILL is not refusable).
  for (let i = 0; i < 200 && killed.some(processAlive); i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  for (const mount of (await mountsUnder(dir)).sort((a, b) => b.length - a.length)) {
    await runCommand('umount', ['--lazy', mount]).catch(() => undefined);
  }
  await removeRecordedCgroup(dir);
  if ((await mountsUnder(dir)).length === 0) await rm(dir, { recursive: true, force: true });
}
