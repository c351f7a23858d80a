import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, realpath, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SandboxDisk } from './disk.ts';

/** The guest's root as mapped on the host (any unprivileged id). */
const OWNER = 231_072;

let work: string;
let disk: SandboxDisk;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'edgebox-disk-'));
  disk = new SandboxDisk(join(work, 'disk.img'), join(work, 'disk'), OWNER);
  await disk.create(16);
});

afterEach(async () => {
  await disk.teardown();
  await rm(work, { recursive: true, force: true });
});

describe('a pod volume subPath', () => {
  it('is made within the volume, owned by the guest root, and handed over opened', async () => {
    const seen = await disk.withVolume({ name: 'cache', subPath: 'conf/d' }, async (hostPath) => ({
      real: await realpath(hostPath),
      entries: await readdir(hostPath),
    }));
    const dir = join(disk.mountPoint, 'volumes', 'cache', 'conf', 'd');
    expect(seen).toEqual({ real: await realpath(dir), entries: [] });
    for (const made of [dir, join(dir, '..')]) {
      const info = await stat(made);
      expect({ uid: info.uid, gid: info.gid, mode: info.mode & 0o777 }).toEqual({
        uid: OWNER,
        gid: OWNER,
        mode: 0o755,
      });
    }
  });

  it('refuses a symlink the guest planted in the volume, and makes nothing where it points', async () => {
    const volume = join(disk.mountPoint, 'volumes', 'cache');
    await disk.withVolume({ name: 'cache' }, () => Promise.resolve());
    const elsewhere = join(work, 'host-dir');
    await mkdir(elsewhere);
    await symlink(elsewhere, join(volume, 'conf'));
    let used = false;
    await expect(
      disk.withVolume({ name: 'cache', subPath: 'conf/d' }, () => {
        used = true;
        return Promise.resolve();
      }),
    ).rejects.toThrow('pod volume cache subPath conf/d: conf is a symlink in the volume');
    expect(used).toBe(false);
    expect(existsSync(join(elsewhere, 'd'))).toBe(false);
    // The last component too: it is never opened through the link.
    await expect(
      disk.withVolume({ name: 'cache', subPath: 'conf' }, () => Promise.resolve()),
    ).rejects.toThrow('conf is a symlink');
  });
});
