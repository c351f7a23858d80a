import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../process/alive.ts';
import { runCommand } from '../process/run-command.ts';
import { mountsUnder } from '../sharing/share.ts';

/**
 * What `shim delete` does for a pod whose shim died: SIGKILL the helper
 * processes named by the run directory's pid files (only those whose
 * command line still names that directory, so a reused pid is never hit),
 * unmount everything below it and remove it.
 */
export async function cleanupPodRunDir(runRoot: string, podId: string): Promise<void> {
  const dir = join(runRoot, podId);
  const files = await readdir(dir).catch(() => [] as string[]);
  const killed: number[] = [];
  for (const file of files.filter((f) => f.endsWith('.pid'))) {
    const pid = Number((await readFile(join(dir, file), 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes(dir)) continue;
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
  if ((await mountsUnder(dir)).length === 0) await rm(dir, { recursive: true, force: true });
}
