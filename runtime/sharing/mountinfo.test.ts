import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCommand } from '../process/run-command.ts';
import { mountRootAt, parseMountInfo, readMountInfo } from './mountinfo.ts';

let work: string;
let target: string | undefined;

beforeEach(async () => {
  // A space in the path: mountinfo writes it as \040.
  work = await mkdtemp(join(tmpdir(), 'edgebox mountinfo-'));
});

afterEach(async () => {
  if (target) await runCommand('umount', [target]);
  target = undefined;
  await rm(work, { recursive: true, force: true });
});

describe('mountinfo', () => {
  it("names a bind mount's source directory as its root, as kubelet's subPath binds are", async () => {
    const subDir = join(work, 'pod', 'volumes', 'kubernetes.io~empty-dir', 'cache', 'conf', 'd');
    const bindPoint = join(work, 'pod', 'volume-subpaths', 'cache', 'web', '0');
    await mkdir(subDir, { recursive: true });
    await mkdir(bindPoint, { recursive: true });
    await runCommand('mount', ['--bind', subDir, bindPoint]);
    target = bindPoint;
    const root = mountRootAt(await readMountInfo(), bindPoint);
    // Within its file system: the host path when tmpdir is on the root one.
    expect(root).toMatch(
      / mountinfo-[^/]+\/pod\/volumes\/kubernetes\.io~empty-dir\/cache\/conf\/d$/,
    );
    expect(subDir.endsWith(root!)).toBe(true);
    expect(mountRootAt(await readMountInfo(), subDir)).toBeUndefined();
  });

  it('takes the topmost of stacked mounts and decodes octal escapes', () => {
    const text = [
      '22 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
      '40 22 254:0 /srv/a /mnt/x\\040y rw - ext4 /dev/vda rw',
      '41 40 254:0 /srv/b\\011c /mnt/x\\040y rw - ext4 /dev/vda rw',
      '',
    ].join('\n');
    expect(parseMountInfo(text)).toHaveLength(3);
    expect(mountRootAt(parseMountInfo(text), '/mnt/x y')).toBe('/srv/b\tc');
  });
});
