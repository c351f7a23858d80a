/**
 * Writer for the "newc" cpio format the Linux initramfs loader reads.
 * Written here because the npm cpio packages are unmaintained or read-only,
 * and the format is one fixed ASCII header per entry. Output is reproducible:
 * entries are sorted by path, inode numbers are assigned in that order, and
 * mtime/uid/gid are fixed, so the same inputs always give the same bytes.
 */

export type CpioEntry =
  | { type: 'dir'; path: string; mode: number }
  | { type: 'file'; path: string; mode: number; data: Uint8Array }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const TRAILER = 'TRAILER!!!';

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

function normalise(path: string): string {
  const trimmed = path.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '' || trimmed.split('/').some((p) => p === '..' || p === '.' || p === '')) {
    throw new Error(`cpio: invalid entry path ${JSON.stringify(path)}`);
  }
  return trimmed;
}

function header(
  ino: number,
  mode: number,
  nlink: number,
  size: number,
  rdev: { major: number; minor: number },
  nameSize: number,
  mtime: number,
): string {
  return (
    '070701' +
    hex8(ino) +
    hex8(mode) +
    hex8(0) + // uid
    hex8(0) + // gid
    hex8(nlink) +
    hex8(mtime) +
    hex8(size) +
    hex8(0) + // dev major
    hex8(0) + // dev minor
    hex8(rdev.major) +
    hex8(rdev.minor) +
    hex8(nameSize) +
    hex8(0) // check
  );
}

/**
 * Serialises entries as one newc archive. Parent directories are added when
 * missing so the kernel never has to create them with default modes.
 */
export function writeCpio(entries: readonly CpioEntry[], mtime = 0): Buffer {
  const byPath = new Map<string, CpioEntry>();
  for (const entry of entries) {
    const path = normalise(entry.path);
    if (byPath.has(path)) throw new Error(`cpio: duplicate entry ${path}`);
    byPath.set(path, { ...entry, path });
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (!byPath.has(parent)) byPath.set(parent, { type: 'dir', path: parent, mode: 0o755 });
    }
  }
  const sorted = [...byPath.values()].sort((a, b) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0,
  );
  const out: Uint8Array[] = [];
  let ino = 1;
  const push = (
    name: string,
    mode: number,
    nlink: number,
    data: Uint8Array,
    rdev = { major: 0, minor: 0 },
  ): void => {
    const nameBytes = Buffer.from(`${name}\0`);
    const head = Buffer.from(
      header(ino++, mode, nlink, data.length, rdev, nameBytes.length, mtime),
      'ascii',
    );
    out.push(head, nameBytes, pad4(head.length + nameBytes.length), data);
    out.push(pad4(data.length));
  };
  for (const entry of sorted) {
    switch (entry.type) {
      case 'dir':
        push(entry.path, S_IFDIR | (entry.mode & 0o7777), 2, new Uint8Array());
        break;
      case 'file':
        push(entry.path, S_IFREG | (entry.mode & 0o7777), 1, entry.data);
        break;
      case 'symlink':
        push(entry.path, S_IFLNK | 0o777, 1, Buffer.from(entry.target));
        break;
      case 'chardev':
        push(entry.path, S_IFCHR | (entry.mode & 0o7777), 1, new Uint8Array(), {
          major: entry.major,
          minor: entry.minor,
        });
        break;
    }
  }
  ino = 0;
  push(TRAILER, 0, 1, new Uint8Array());
  return Buffer.concat(out);
}
