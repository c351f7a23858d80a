import { chmod, chown, lstat, mkdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The kernel's own bound on symlinks followed in one lookup (MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

/** A volume's mount point inside a container: a directory, or a file (a bind of one file). */
export interface MountPoint {
  path: string;
  directory: boolean;
}

/**
 * Where `path` lands inside `root`, as the container will see it: every
 * symlink of the image resolved against `root` (an absolute target starts
 * again at `root`, `..` stops at it), so no answer names a place outside.
 * The components past the first missing one are kept as written. Returned as
 * components relative to `root`.
 */
export async function resolveInRoot(root: string, path: string): Promise<string[]> {
  const resolved: string[] = [];
  const pending = path.split('/').filter((c) => c !== '' && c !== '.');
  let links = 0;
  let missing = false;
  while (pending.length > 0) {
    const component = pending.shift()!;
    if (component === '..') {
      resolved.pop();
      continue;
    }
    if (missing) {
      resolved.push(component);
      continue;
    }
    const at = join(root, ...resolved, component);
    const found = await lstat(at).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      if (err.code === 'ENOTDIR')
        throw new Error(
          `mount point ${path}: ${resolved.at(-1)} is not a directory in the container's image`,
        );
      throw err;
    });
    if (!found) {
      missing = true;
      resolved.push(component);
    } else if (found.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS)
        throw new Error(`mount point ${path}: more than ${MAX_SYMLINKS} symlinks in the image`);
      const target = await readlink(at);
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
    } else {
      resolved.push(component);
    }
  }
  return resolved;
}

/**
 * Makes the volumes' mount points of a writable rootfs in its overlay's upper
 * layer, before the overlay is mounted: the guest's root is the mapped id on
 * the host, which cannot create entries in the image's root-owned
 * directories (`/etc/app`, kubelet's `/var/run/secrets/...`), and the host
 * cannot make them through the shared overlay without racing the guest. The
 * image (`lowerDir`) decides where each lands (its symlinks resolved inside
 * it); the upper layer is new and not yet seen by the guest. Directories the
 * image has are copied into the upper layer with their owner and mode, so the
 * merged view keeps them; new ones belong to the guest's root (`owner`).
 */
export async function prepareMountPoints(
  lowerDir: string,
  upperDir: string,
  points: readonly MountPoint[],
  owner: number,
): Promise<void> {
  for (const point of points) {
    const components = await resolveInRoot(lowerDir, point.path);
    if (components.length === 0) continue;
    for (const [index, component] of components.entries()) {
      const relative = components.slice(0, index + 1);
      const last = index === components.length - 1;
      const inImage = await lstat(join(lowerDir, ...relative)).catch(() => undefined);
      const inUpper = await lstat(join(upperDir, ...relative)).catch(() => undefined);
      if (inImage && !inImage.isDirectory()) {
        if (last && !point.directory) break;
        throw new Error(
          `mount point ${point.path}: ${component} is not a directory in the container's image`,
        );
      }
      if (inUpper) continue;
      const at = join(upperDir, ...relative);
      if (last && !point.directory && !inImage) {
        await writeFile(at, '', { flag: 'wx', mode: 0o644 });
        await chown(at, owner, owner);
      } else if (inImage) {
        await mkdir(at);
        await chown(at, inImage.uid, inImage.gid);
        await chmod(at, inImage.mode & 0o7777);
      } else {
        await mkdir(at, { mode: 0o755 });
        await chown(at, owner, owner);
      }
    }
  }
}
