import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatIdentity, processStartTime } from '../process/identity.ts';
import { runCommand } from '../process/run-command.ts';
import { SandboxShare, mountsUnder } from '../sharing/share.ts';
import { CGROUP_RECORD_FILE, HostCgroup, cgroupHierarchies } from './host-cgroup.ts';
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

  it("removes a dead sandbox's host cgroup, only the directories it made", async () => {
    const root = await mkdtemp(join(tmpdir(), 'edgebox-stale-'));
    dirs.push(root);
    const parent = `edgebox-stale-test-${process.pid}`;
    const { hierarchies } = await cgroupHierarchies();
    const theirs = hierarchies.map(({ mountPoint }) => join(mountPoint, parent));
    for (const dir of theirs) await mkdir(dir);
    try {
      const cgroup = await HostCgroup.create(`${parent}/pod/sandbox`);
      const dead = join(root, 'dead');
      await mkdir(dead);
      await writeFile(join(dead, 'qemu.pid'), `${await deadPid()}\n`);
      await writeFile(join(dead, CGROUP_RECORD_FILE), JSON.stringify(cgroup.record));

      expect(await reapStaleSandboxes(root)).toEqual(['dead']);
      for (const dir of cgroup.dirs) expect(existsSync(dirname(dir))).toBe(false);
      for (const dir of theirs) expect(existsSync(dir)).toBe(true);
    } finally {
      for (const dir of theirs) await rmdir(join(dir, 'pod', 'sandbox')).catch(() => undefined);
      for (const dir of theirs) await rmdir(join(dir, 'pod')).catch(() => undefined);
      for (const dir of theirs) await rmdir(dir);
    }
  });

  it('kills the helpers of a dead runtime that still run, never a process that reused a pid', async () => {
    const root = await mkdtemp(join(tmpdir(), 'edgebox-stale-'));
    dirs.push(root);
    const orphan = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const stranger = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const orphanGone = new Promise((resolve) => orphan.once('exit', resolve));
    try {
      const dir = join(root, 'orphaned');
      await mkdir(dir);
      // The runtime that started them is dead (its pid is free, so no start time matches).
      await writeFile(join(dir, 'owner'), formatIdentity({ pid: await deadPid(), startTime: 1 }));
      const start = async (pid: number | undefined): Promise<number> =>
        (await processStartTime(pid ?? 0)) ?? -1;
      await writeFile(
        join(dir, 'qemu.pid'),
        formatIdentity({ pid: orphan.pid ?? 0, startTime: await start(orphan.pid) }),
      );
      // Same pid as recorded, but not the process recorded: it started at another time.
      await writeFile(
        join(dir, 'virtiofsd.pid'),
        formatIdentity({ pid: stranger.pid ?? 0, startTime: (await start(stranger.pid)) - 1 }),
      );

      const live = join(root, 'live');
      await mkdir(live);
      await writeFile(
        join(live, 'owner'),
        formatIdentity({ pid: process.pid, startTime: await start(process.pid) }),
      );

      expect(await reapStaleSandboxes(root)).toEqual(['orphaned']);
      await orphanGone;
      expect(orphan.signalCode).toBe('SIGKILL');
      expect(stranger.exitCode).toBe(null);
      expect(stranger.signalCode).toBe(null);
      expect(existsSync(dir)).toBe(false);
      expect(existsSync(live)).toBe(true);
    } finally {
      orphan.kill('SIGKILL');
      stranger.kill('SIGKILL');
    }
  });
});
