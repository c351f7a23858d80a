import { readFile } from 'node:fs/promises';

/** One line of /proc/<pid>/mountinfo, paths with their octal escapes (`\040`) decoded. */
export interface MountInfoEntry {
  /** The directory within its file system that the mount shows (a bind's source). */
  root: string;
  mountPoint: string;
}

const decode = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8)));

/** The mounts of mountinfo `text`, in its order (a mount stacked on another comes later). */
export function parseMountInfo(text: string): MountInfoEntry[] {
  const entries: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const [root, mountPoint] = [fields[3], fields[4]];
    if (root === undefined || mountPoint === undefined) continue;
    entries.push({ root: decode(root), mountPoint: decode(mountPoint) });
  }
  return entries;
}

export async function readMountInfo(): Promise<MountInfoEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** The root of the mount seen at `path` (the topmost when mounts are stacked), if `path` is a mount point. */
export function mountRootAt(entries: readonly MountInfoEntry[], path: string): string | undefined {
  return entries.findLast((entry) => entry.mountPoint === path)?.root;
}
