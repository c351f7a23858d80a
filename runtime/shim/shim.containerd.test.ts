import { readdir, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGuestImage } from '../image/build.ts';
import { makeBusyboxRootfs } from '../test-support/busybox-rootfs.ts';
import {
  RUNTIME_TYPE,
  startContainerd,
  type PrivateContainerd,
} from '../test-support/containerd.ts';
import { buildOciArchive } from '../test-support/oci-image.ts';

/**
 * The shim under a real containerd (Debian's 1.6, private config and state)
 * booting real VMs under QEMU TCG: `ctr run` with the edgebox runtime.
 */
const VM_TIMEOUT = 240_000;
const NS = 'edgebox-test';
const IMAGE = 'edgebox.test/busybox:1';
let containerd: PrivateContainerd;
let archive: string;

beforeAll(async () => {
  const image = await buildGuestImage();
  const rootfs = await makeBusyboxRootfs();
  archive = await buildOciArchive(rootfs, [
    { name: IMAGE, cmd: ['sh'] },
    { name: 'edgebox.test/pause:1', cmd: ['sleep', '2147483647'] },
  ]);
  await rm(rootfs, { recursive: true, force: true });
  containerd = await startContainerd({
    guestImageDir: image.dir,
    pauseImage: 'edgebox.test/pause:1',
  });
  await containerd.ctr(['-n', NS, 'image', 'import', archive]);
}, VM_TIMEOUT);

afterAll(async () => {
  await containerd?.stop();
  await rm(archive, { force: true });
});

describe('ctr run --runtime io.containerd.edgebox.v2', () => {
  it(
    'prints the container output and exits with its code, leaving nothing behind',
    async () => {
      const run = await containerd.ctr(
        [
          '-n',
          NS,
          'run',
          '--rm',
          '--runtime',
          RUNTIME_TYPE,
          IMAGE,
          'run1',
          'sh',
          '-c',
          'cat /etc/message; echo to-stderr >&2; exit 7',
        ],
        { allowFail: true },
      );
      expect(run.stdout).toBe('hello from the rootfs\n');
      expect(run.stderr).toContain('to-stderr');
      expect(run.code).toBe(7);
      expect(await readdir(containerd.runRoot).catch(() => [])).toEqual(
        expect.not.arrayContaining(['run1']),
      );
    },
    VM_TIMEOUT,
  );
});
