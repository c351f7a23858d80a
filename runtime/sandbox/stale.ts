import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../process/alive.ts';
import { parseIdentity, sameProcessRunning, type ProcessIdentity } from '../process/identity.ts';
import { ID_SLOT_DIR } from '../sharing/id-map.ts';
import { mountsUnder, unmount } from '../sharing/share.ts';
import { removeRecordedCgroup } from './host-cgroup.ts';
import { reclaimDeadClaims } from './vsock-cid.ts';

/** A run directory younger than this without pid files may be a sandbox still starting. */
const STARTING_GRACE_MS = 120_000;
/** How long gc waits for a killed helper to be gone. */
const KILL_WAIT_MS = 5_000;

async function readIdentity(
  path: string,
): Promise<{ pid: number; startTime?: number } | undefined> {
  return parseIdentity(await readFile(path, 'utf8').catch(() => ''));
}

/**
 * Removes what a runtime killed with SIGKILL left behind. Its helpers get
 * their parent-death signal from the kernel; should one still run (say an
 * older runtime started it), it is killed here, but only if its pid still
 * names the process the runtime started (same start time), never a stranger
 * that took the number since. Then the share's mounts, the disk and the run
 * directory go. A run directory whose runtime (the `owner` file) is alive is
 * left alone; without an owner file it is stale once no helper in its pid
 * files is alive. Id slots claimed by dead runtimes are freed. Returns the ids
 * of the sandboxes reaped.
 */
export async function reapStaleSandboxes(runRoot: string, now = Date.now()): Promise<string[]> {
  const reaped: string[] = [];
  const entries = await readdir(runRoot, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    // Sandbox ids never start with a dot; what does (the vsock CID claims) tends itself.
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = join(runRoot, entry.name);
    const files = await readdir(dir).catch(() => []);
    const helpers: { pid: number; startTime?: number }[] = [];
    for (const file of files.filter((f) => f.endsWith('.pid'))) {
      const identity = await readIdentity(join(dir, file));
      if (identity) helpers.push(identity);
    }
    const owner = await readIdentity(join(dir, 'owner'));
    if (owner?.startTime !== undefined) {
      if (await sameProcessRunning(owner as ProcessIdentity)) continue;
      if (!(await killOrphans(helpers))) continue;
    } else {
      if (helpers.some((h) => processAlive(h.pid))) continue;
      if (helpers.length === 0) {
        const info = await stat(dir).catch(() => undefined);
        if (!info || now - info.mtimeMs < STARTING_GRACE_MS) continue;
      }
    }
    const mounts = (await mountsUnder(dir)).sort((a, b) => b.length - a.length);
    for (const mount of mounts) {
      // Unmounting one of a peer pair (the share and its host view) unmounts the other too.
      await unmount(mount).catch(() => undefined);
    }
    if ((await mountsUnder(dir)).length > 0) continue;
    // Kept (and tried again next time) while a process the runtime did not start still holds it.
    try {
      await removeRecordedCgroup(dir);
    } catch {
      continue;
    }
    const diskImage = await diskImageOf(dir);
    if (diskImage) await rm(diskImage, { force: true });
    await rm(dir, { recursive: true, force: true });
    reaped.push(entry.name);
  }
  // The id slots of the runtimes that are gone (their sandboxes were just reaped, or never made).
  await reclaimDeadClaims(join(runRoot, ID_SLOT_DIR));
  return reaped;
}

/** SIGKILLs the helpers still running as started; true once none is left. */
async function killOrphans(helpers: { pid: number; startTime?: number }[]): Promise<boolean> {
  const orphans = helpers.filter((h): h is ProcessIdentity => h.startTime !== undefined);
  for (const orphan of orphans) {
    if (!(await sameProcessRunning(orphan))) continue;
    try {
      process.kill(orphan.pid, 'SIGKILL');
    } catch {
      // Gone in the meantime.
    }
  }
  const deadline = performance.now() + KILL_WAIT_MS;
  for (;;) {
    const left = [];
    for (const orphan of orphans) if (await sameProcessRunning(orphan)) left.push(orphan);
    if (left.length === 0) return true;
    if (performance.now() > deadline) return false;
    // Killed processes are reaped by init once their runtime is gone; nothing to wait on but /proc.
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The disk image a sandbox recorded in its state file (it may live outside the run directory). */
async function diskImageOf(dir: string): Promise<string | undefined> {
  try {
    const state = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as {
      diskImage?: unknown;
    };
    return typeof state.diskImage === 'string' && state.diskImage.startsWith('/')
      ? state.diskImage
      : undefined;
  } catch {
    return undefined;
  }
}
