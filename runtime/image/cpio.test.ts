import { describe, expect, it } from 'vitest';
import { writeCpio } from './cpio.ts';

interface Parsed {
  name: string;
  mode: number;
  mtime: number;
  rdev: [number, number];
  data: Buffer;
}

/** Reads newc back, the way the kernel's initramfs unpacker walks it. */
function parseCpio(archive: Buffer): Parsed[] {
  const out: Parsed[] = [];
  let at = 0;
  const align = (n: number): number => (n + 3) & ~3;
  for (;;) {
    expect(archive.subarray(at, at + 6).toString()).toBe('070701');
    const field = (i: number): number =>
      parseInt(archive.subarray(at + 6 + i * 8, at + 14 + i * 8).toString(), 16);
    const size = field(6);
    const nameSize = field(11);
    const name = archive.subarray(at + 110, at + 110 + nameSize - 1).toString();
    const dataAt = align(at + 110 + nameSize);
    const data = archive.subarray(dataAt, dataAt + size);
    const entry: Parsed = {
      name,
      mode: field(1),
      mtime: field(5),
      rdev: [field(9), field(10)],
      data,
    };
    at = align(dataAt + size);
    if (name === 'TRAILER!!!') break;
    out.push(entry);
  }
  expect(at).toBe(archive.length);
  return out;
}

describe('cpio newc writer', () => {
  it('writes sorted entries with parents, fixed times and aligned data', () => {
    const archive = writeCpio([
      { type: 'file', path: 'bin/tool', mode: 0o755, data: Buffer.from('abcde') },
      { type: 'symlink', path: 'bin/sh', target: 'busybox' },
      { type: 'chardev', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
    ]);
    const entries = parseCpio(archive);
    expect(entries.map((e) => e.name)).toEqual(['bin', 'bin/sh', 'bin/tool', 'dev', 'dev/console']);
    expect(entries.every((e) => e.mtime === 0)).toBe(true);
    const tool = entries.find((e) => e.name === 'bin/tool');
    expect(tool?.mode).toBe(0o100755);
    expect(tool?.data.toString()).toBe('abcde');
    expect(entries.find((e) => e.name === 'bin/sh')?.data.toString()).toBe('busybox');
    expect(entries.find((e) => e.name === 'dev/console')?.rdev).toEqual([5, 1]);
  });

  it('gives the same bytes whatever the input order', () => {
    const a = { type: 'file' as const, path: 'a', mode: 0o644, data: Buffer.from('1') };
    const b = { type: 'dir' as const, path: 'b/c', mode: 0o755 };
    expect(writeCpio([a, b]).equals(writeCpio([b, a]))).toBe(true);
  });

  it('refuses paths that could escape the archive root, and duplicates', () => {
    expect(() => writeCpio([{ type: 'dir', path: '../x', mode: 0o755 }])).toThrow(/invalid entry/);
    expect(() =>
      writeCpio([
        { type: 'dir', path: 'x', mode: 0o755 },
        { type: 'dir', path: '/x/', mode: 0o755 },
      ]),
    ).toThrow(/duplicate/);
  });
});
