import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCommand } from '../process/run-command.ts';
import { SandboxShare, mountsUnder } from './share.ts';

/**
 * The share as a hostile guest sees it, without a VM: a process in its own
 * mount namespace with slave propagation stands in for virtiofsd (which is
 * what virtiofsd's namespace sandbox is), and runs what a guest could make
 * virtiofsd do.
 */
let work: string;
let share: SandboxShare;
let standIn: ChildProcess | undefined;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'edgebox-share-'));
  share = new SandboxShare(join(work, 'share'));
  await share.prepare();
  // Started before the volumes are bound, as virtiofsd is before containers are created.
  const child = spawn('unshare', ['-m', '--propagation', 'slave', 'sh', '-c', 'echo ready; cat'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  standIn = child;
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
});

afterEach(async () => {
  standIn?.kill('SIGKILL');
  await share.teardown();
  expect(await mountsUnder(work)).toEqual([]);
  await rm(work, { recursive: true, force: true });
});

/** An overlay's upper and work directories, as the sandbox's disk makes them. */
async function overlayLayers(dir: string): Promise<{ upperDir: string; workDir: string }> {
  const upperDir = join(dir, 'upper');
  const workDir = join(dir, 'work');
  await mkdir(upperDir, { recursive: true });
  await mkdir(workDir, { recursive: true });
  return { upperDir, workDir };
}

/** Runs a shell command in the stand-in's mount namespace; true when it succeeded. */
async function asVirtiofsd(script: string): Promise<boolean> {
  return runCommand('nsenter', ['-m', '-t', String(standIn?.pid), 'sh', '-c', script]).then(
    () => true,
    () => false,
  );
}

describe('sandbox share against a hostile guest', () => {
  it('keeps :ro volumes read-only in virtiofsd, not only on the host', async () => {
    const rw = join(work, 'rw');
    const ro = join(work, 'ro');
    const roFile = join(work, 'ro-file');
    await mkdir(rw);
    await mkdir(ro);
    await writeFile(roFile, 'keep\n');
    const rwPath = await share.bind(rw, 'containers/c/volumes/0', false);
    const roPath = await share.bind(ro, 'containers/c/volumes/1', true);
    const roFilePath = await share.bind(roFile, 'containers/c/volumes/2', true);

    expect(await asVirtiofsd(`echo x > ${join(share.dir, rwPath)}/written`)).toBe(true);
    expect(await asVirtiofsd(`echo x > ${join(share.dir, roPath)}/written`)).toBe(false);
    expect(await asVirtiofsd(`echo x > ${join(share.dir, roFilePath)}`)).toBe(false);
    expect(await readdir(rw)).toEqual(['written']);
    expect(await readdir(ro)).toEqual([]);
  });

  it('lets the guest change nothing around the mounts the host later unmounts', async () => {
    const rootfs = join(work, 'rootfs');
    await mkdir(rootfs);
    await share.bind(rootfs, 'containers/c/rootfs', false);
    const container = join(share.dir, 'containers/c');

    expect(await asVirtiofsd(`echo x > ${container}/rootfs/inside`)).toBe(true);
    // Swapping a directory the host walks for a symlink would aim its umount and rm elsewhere.
    expect(await asVirtiofsd(`mv ${container} ${container}.moved`)).toBe(false);
    expect(await asVirtiofsd(`ln -s / ${share.dir}/containers/d`)).toBe(false);
    expect(await asVirtiofsd(`mkdir ${container}/volumes`)).toBe(false);

    await share.unbind('containers/c');
    expect((await mountsUnder(work)).filter((m) => m.includes('/containers/'))).toEqual([]);
    expect(await readdir(rootfs)).toEqual(['inside']);
  });

  it('lets no mount propagate between a shared host source and the share, either way', async () => {
    // A source on a shared mount, as everything under systemd's `/` is.
    const source = join(work, 'shared-source');
    await mkdir(source);
    await runCommand('mount', ['--bind', source, source]);
    await runCommand('mount', ['--make-shared', source]);
    const later = join(source, 'later');
    try {
      await mkdir(join(source, 'later'));
      const volume = await share.bind(source, 'containers/c/volumes/0', false);
      const rootfs = await share.overlay(
        source,
        await overlayLayers(join(work, 'layers')),
        'containers/c/rootfs',
      );
      // The host mounts something under the source after the sandbox started.
      await runCommand('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'later', later]);
      await writeFile(join(later, 'host-secret'), 'x');
      for (const path of [volume, rootfs]) {
        expect(await asVirtiofsd(`test -e ${join(share.dir, path)}/later/host-secret`)).toBe(false);
        expect(await asVirtiofsd(`test -d ${join(share.dir, path)}/later`)).toBe(true);
      }
      await share.unbind('containers/c');
      // Teardown took nothing of the host's with it.
      expect(await mountsUnder(later)).toEqual([later]);
      expect(await readdir(later)).toEqual(['host-secret']);
    } finally {
      await runCommand('umount', [later]).catch(() => undefined);
      await runCommand('umount', [source]);
    }
  });

  it('refuses share paths outside the share and host paths that are not absolute', async () => {
    await expect(share.bind(work, '../escape', false)).rejects.toThrow(/escapes the share/);
    await expect(share.bind(work, '.', false)).rejects.toThrow(/escapes the share/);
    await expect(share.bind('--rbind', 'containers/c/rootfs', false)).rejects.toThrow(
      /not an absolute path/,
    );
  });
});
