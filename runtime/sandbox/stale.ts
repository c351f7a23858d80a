import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../process/alive.ts';
import { runCommand } from '../process/run-command.ts';
import { mountsUnder } from '../sharing/share.ts';

/** A run directory younger than this without pid files may be a sandbox still starting. */
const STARTING_GRACE_MS = 120_000;

/**
 * Removes what a runtime killed with SIGKILL left behind: its VM winds down
 * by itself (the agent powers off when the host end of its channel goes
 * away), but its share's bind mounts and its run directory stay. A run
 * directory is stale when none of the processes in its pid files is alive.
 * Returns the ids of the sandboxes reaped.
 */
export async function reapStaleSandboxes(runRoot: string, now = Date.now()): Promise<string[]> {
  const reaped: string[] = [];
  const entries = await readdir(runRoot, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    // Sandbox ids never start with a dot; what does (the vsock CID claims) tends itself.
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = join(runRoot, entry.name);
    const files = await readdir(dir).catch(() => []);
    const pids: number[] = [];
    for (const file of files.filter((f) => f.endsWith('.pid'))) {
      const pid = Number((await readFile(join(dir, file), 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0) pids.push(pid);
    }
    if (pids.some(processAlive)) continue;
    if (pids.length === 0) {
      const info = await stat(dir).catch(() => undefined);
      if (!info || now - info.mtimeMs < STARTING_GRACE_MS) continue;
    }
    const mounts = (await mountsUnder(dir)).sort((a, b) => b.length - a.length);
    for (const mount of mounts) {
      // Unmounting one of a peer pair (the share and its host view) unmounts the other too.
      await runCommand('umount', ['--lazy', mount]).catch(() => undefined);
    }
    if ((await mountsUnder(dir)).length > 0) continue;
    await rm(dir, { recursive: true, force: true });
    reaped.push(entry.name);
  }
  return reaped;
}
