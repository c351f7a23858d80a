import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { buildGuestImage } from './build.ts';
import { hasPvhNote } from './kernel-image.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('guest image build', () => {
  it('is reproducible: two fresh builds give the same bytes', { timeout: 300_000 }, async () => {
    const [a, b] = [
      await mkdtemp(join(tmpdir(), 'edgebox-img-a-')),
      await mkdtemp(join(tmpdir(), 'edgebox-img-b-')),
    ];
    dirs.push(a, b);
    const first = await buildGuestImage({ out: a, useCache: false });
    const second = await buildGuestImage({ out: b, useCache: false });
    expect(second.manifest).toEqual(first.manifest);
    for (const file of [
      'initramfs.cpio.zst',
      'vmlinux',
      'vmlinuz',
      'runtime/node',
      'runtime/socat',
      'manifest.json',
    ]) {
      const [x, y] = [await readFile(join(a, file)), await readFile(join(b, file))];
      expect(x.equals(y), `${file} differs between builds`).toBe(true);
    }
    // The kernel is booted through its PVH entry, and modules load dependencies first.
    expect(hasPvhNote(await readFile(join(a, 'vmlinux')))).toBe(true);
    const order = first.manifest.modules;
    const before = (x: string, y: string): boolean =>
      order.indexOf(x) >= 0 && order.indexOf(x) < order.indexOf(y);
    expect(before('virtio_ring', 'virtio')).toBe(true);
    expect(before('virtio', 'virtio_mmio')).toBe(true);
    expect(before('fuse', 'virtiofs')).toBe(true);
    expect(before('failover', 'virtio_net')).toBe(true);
    expect(order).toContain('virtio_console');
    // The vsock channel's guest end: its modules in order, and socat with its libraries.
    expect(before('vsock', 'vmw_vsock_virtio_transport_common')).toBe(true);
    expect(before('vmw_vsock_virtio_transport_common', 'vmw_vsock_virtio_transport')).toBe(true);
    expect(first.manifest.packages.map((p) => p.name)).toContain('socat');
    // socat rides on the read-only runtime share, not in what every boot unpacks.
    const archive = zstdDecompressSync(await readFile(join(a, 'initramfs.cpio.zst')));
    for (const path of ['usr/bin/socat', 'lib/x86_64-linux-gnu/libssl.so.3']) {
      expect(archive.includes(Buffer.from(`${path}\0`)), `${path} in the initramfs`).toBe(false);
    }
    for (const path of ['runtime/socat', 'runtime/socat-lib/libssl.so.3', 'runtime/node']) {
      expect(existsSync(join(a, path)), `${path} in the image`).toBe(true);
    }
  });
});
