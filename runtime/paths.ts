import { mkdir } from 'node:fs/promises';
import { tmpdir, homedir } from 'node:os';
import { join, resolve } from 'node:path';

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Where built guest images and downloaded packages live:
 * $EDGEBOX_CACHE_DIR, else /var/cache/edgebox as root, else ~/.cache/edgebox.
 */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.EDGEBOX_CACHE_DIR) return resolve(env.EDGEBOX_CACHE_DIR);
  if (isRoot()) return '/var/cache/edgebox';
  return join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'edgebox');
}

/**
 * Parent of the per-sandbox run directories (sockets, pid files, state, share):
 * $EDGEBOX_RUN_DIR, else /run/edgebox/sandboxes as root, else a per-user tmp dir.
 */
export function defaultSandboxRunRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.EDGEBOX_RUN_DIR) return resolve(env.EDGEBOX_RUN_DIR);
  if (isRoot()) return '/run/edgebox/sandboxes';
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return join(tmpdir(), `edgebox-${uid}`, 'sandboxes');
}

/**
 * Creates the run root, and any parent it lacks, passable by others (0711):
 * virtiofsd and QEMU run as unprivileged ids below it. A parent created 0700
 * by whichever runtime process came first (a shim's socket directory, a
 * vsock CID claim) would lock every later sandbox out.
 */
export async function ensureRunRoot(runRoot: string): Promise<void> {
  await mkdir(runRoot, { recursive: true, mode: 0o711 });
}
