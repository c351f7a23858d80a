import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCommand } from '../process/run-command.ts';
import { SandboxShare, mountsUnder } from '../sharing/share.ts';
import { reapStaleSandboxes } from './stale.ts';
import { deadPid } from '../test-support/dead-pid.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) {
    for (const m of (await mountsUnder(dir)).reverse())
      await runCommand('umount', ['--lazy', m]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});

describe('stale sandbox reaping', () => {
  it('unmounts and removes run directories whose processes are all gone, and only those', async () => {
    const root = await mkdtemp(join(tmpdir(), 'edgebox-stale-'));
    const outside = await mkdtemp(join(tmpdir(), 'edgebox-stale-data-'));
    dirs.push(root, outside);
    await writeFile(join(outside, 'keep.txt'), 'host data\n');

    const stale = join(root, 'dead');
    // The layout a sandbox leaves: the share, its host view (peer mounts) and a volume.
    const share = new SandboxShare(join(stale, 'share'));
    await share.prepare();
    await share.bind(outside, 'vol', false);
    await writeFile(join(stale, 'qemu.pid'), `${await deadPid()}\n`);

    const live = join(root, 'live');
    await mkdir(live);
    await writeFile(join(live, 'qemu.pid'), `${process.pid}\n`);

    const starting = join(root, 'starting');
    await mkdir(starting);

    expect(await reapStaleSandboxes(root)).toEqual(['dead']);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(starting)).toBe(true);
    // The bind-mounted host directory is unmounted, never deleted through the mount.
    expect(existsSync(join(outside, 'keep.txt'))).toBe(true);
    expect(await reapStaleSandboxes(root, Date.now() + 10 * 60_000)).toEqual(['starting']);
  });
});
