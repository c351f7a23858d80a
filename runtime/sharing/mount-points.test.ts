import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { prepareMountPoints, resolveInRoot } from './mount-points.ts';

const GUEST_ROOT = 0x70000000;
let dir: string;
let image: string;
let upper: string;

/** An image as containerd unpacks one: root-owned directories, Debian's /var/run -> /run. */
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgebox-mount-points-'));
  image = join(dir, 'image');
  upper = join(dir, 'upper');
  await mkdir(upper);
  for (const d of ['etc', 'run', 'var', 'usr/share'])
    await mkdir(join(image, d), { recursive: true });
  await chmod(join(image, 'etc'), 0o750);
  await chown(join(image, 'etc'), 0, 42);
  await writeFile(join(image, 'etc/hosts'), '');
  await symlink('/run', join(image, 'var/run'));
  await symlink('/etc', join(image, 'usr/share/config'));
  await symlink('../../../../..', join(image, 'usr/share/up'));
  await symlink('loop-b', join(image, 'loop-a'));
  await symlink('loop-a', join(image, 'loop-b'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('mount points of a writable rootfs', () => {
  it("resolves the image's symlinks inside the image, never outside it", async () => {
    expect(await resolveInRoot(image, '/var/run/secrets/kubernetes.io')).toEqual([
      'run',
      'secrets',
      'kubernetes.io',
    ]);
    expect(await resolveInRoot(image, '/usr/share/config/app')).toEqual(['etc', 'app']);
    expect(await resolveInRoot(image, '/usr/share/up/etc/app')).toEqual(['etc', 'app']);
    await expect(resolveInRoot(image, '/loop-a/x')).rejects.toThrow(/more than 40 symlinks/);
  });

  it("makes kubelet's and a ConfigMap's mount points in the upper layer, as the image would hold them", async () => {
    await prepareMountPoints(
      image,
      upper,
      [
        { path: '/var/run/secrets/kubernetes.io/serviceaccount', directory: true },
        { path: '/etc/app/conf', directory: true },
        { path: '/etc/app.yaml', directory: false },
        { path: '/etc/hosts', directory: false },
      ],
      GUEST_ROOT,
    );
    // The image's /etc keeps its owner and mode in the merged view; what is new is the guest root's.
    const etc = await lstat(join(upper, 'etc'));
    expect([etc.uid, etc.gid, etc.mode & 0o7777]).toEqual([0, 42, 0o750]);
    for (const made of ['etc/app', 'etc/app/conf', 'run/secrets/kubernetes.io/serviceaccount']) {
      const s = await lstat(join(upper, made));
      expect([made, s.isDirectory(), s.uid, s.mode & 0o777]).toEqual([
        made,
        true,
        GUEST_ROOT,
        0o755,
      ]);
    }
    const file = await lstat(join(upper, 'etc/app.yaml'));
    expect([file.isFile(), file.size, file.uid]).toEqual([true, 0, GUEST_ROOT]);
    // What the image has is not copied up; the symlink's own directory is left alone.
    expect((await readdir(join(upper, 'etc'))).sort()).toEqual(['app', 'app.yaml']);
    expect(await readdir(upper)).not.toContain('var');
  });

  it('refuses a mount point under a file of the image, naming it', async () => {
    await expect(
      prepareMountPoints(image, upper, [{ path: '/etc/hosts/x', directory: true }], GUEST_ROOT),
    ).rejects.toThrow('mount point /etc/hosts/x: hosts is not a directory in the container');
  });
});
