import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  HostCgroup,
  cgroupHierarchies,
  cgroupPathFromOci,
  currentCgroupProcs,
} from './host-cgroup.ts';

const V1 = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:32 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const V2 = `30 22 0:27 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
`;

describe('host cgroup paths', () => {
  it('takes an OCI cgroupsPath in cgroupfs form as it is and expands the systemd form as runc does', () => {
    expect(cgroupPathFromOci('/kubepods/burstable/pod1/abc')).toBe('kubepods/burstable/pod1/abc');
    expect(cgroupPathFromOci('kubepods-burstable-pod1.slice:cri-containerd:abc')).toBe(
      'kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope',
    );
    expect(cgroupPathFromOci(':cri-containerd:abc')).toBe('system.slice/cri-containerd-abc.scope');
    expect(cgroupPathFromOci('-.slice:p:n')).toBe('p-n.scope');
    expect(() => cgroupPathFromOci('/kubepods/../etc')).toThrow(/below the root/);
    expect(() => cgroupPathFromOci('a--b.slice:p:n')).toThrow(/empty part/);
    expect(() => cgroupPathFromOci('kubepods:p:n')).toThrow(/ending in \.slice/);
  });

  it('uses cpu, cpuacct, memory and pids on v1 (a combined mount once), the unified tree on v2', async () => {
    expect(await cgroupHierarchies(V1)).toEqual({
      unified: false,
      hierarchies: [
        { mountPoint: '/sys/fs/cgroup/cpu,cpuacct', controllers: ['cpu', 'cpuacct'] },
        { mountPoint: '/sys/fs/cgroup/memory', controllers: ['memory'] },
        { mountPoint: '/sys/fs/cgroup/pids', controllers: ['pids'] },
      ],
    });
    expect(await cgroupHierarchies(V2)).toEqual({
      unified: true,
      hierarchies: [{ mountPoint: '/sys/fs/cgroup', controllers: [] }],
    });
  });
});

describe('a host cgroup on this machine', () => {
  const parent = `edgebox-cgroup-test-${process.pid}`;
  const madeByHand: string[] = [];

  afterAll(async () => {
    for (const dir of madeByHand.reverse()) await rmdir(dir).catch(() => undefined);
  });

  it('holds the processes put in it; at release kills what is left and removes only what it made', async () => {
    // A parent someone else made (kubelet's pod cgroup): never removed.
    const { hierarchies } = await cgroupHierarchies();
    for (const { mountPoint } of hierarchies) {
      await mkdir(join(mountPoint, parent));
      madeByHand.push(join(mountPoint, parent));
    }
    const cgroup = await HostCgroup.create(`/${parent}/made/sandbox`);
    // A helper's child still ending on its parent-death signal when the helpers are reaped.
    const straggler = spawn('sleep', ['600'], { stdio: 'ignore' });
    const ended = new Promise((r) => straggler.once('exit', (_code, signal) => r(signal)));
    await cgroup.add(straggler.pid!);
    expect(await currentCgroupProcs(straggler.pid!)).toEqual(cgroup.procsFiles);
    expect(await readFile(`/proc/${straggler.pid}/cgroup`, 'utf8')).toContain(
      `:/${parent}/made/sandbox\n`,
    );
    // The shim joins its pod's cgroup, outlives it, and is put back where it was, never killed.
    const shim = spawn('sleep', ['600'], { stdio: 'ignore' });
    const home = await currentCgroupProcs(shim.pid!);
    await cgroup.join(shim.pid!);
    expect(await currentCgroupProcs(shim.pid!)).toEqual(cgroup.procsFiles);
    try {
      await cgroup.release();
      expect(await ended).toBe('SIGKILL');
      expect(await currentCgroupProcs(shim.pid!)).toEqual(home);
      expect(shim.signalCode).toBeNull();
    } finally {
      shim.kill('SIGKILL');
    }
    for (const { mountPoint } of hierarchies) {
      expect(existsSync(join(mountPoint, parent, 'made'))).toBe(false);
      expect(existsSync(join(mountPoint, parent))).toBe(true);
    }
  });

  it('never kills in, nor removes, a cgroup it joined but did not make', async () => {
    const { hierarchies } = await cgroupHierarchies();
    for (const { mountPoint } of hierarchies) {
      await mkdir(join(mountPoint, parent, 'theirs'), { recursive: true });
      madeByHand.push(join(mountPoint, parent, 'theirs'));
    }
    const cgroup = await HostCgroup.create(`${parent}/theirs`);
    const resident = spawn('sleep', ['600'], { stdio: 'ignore' });
    try {
      await cgroup.add(resident.pid!);
      await cgroup.release();
      // Still running (a killed one would have left the cgroup as a zombie by the time release returned).
      const stat = await readFile(`/proc/${resident.pid}/stat`, 'utf8');
      expect(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)).not.toBe('Z');
      expect(await readFile(cgroup.procsFiles[0]!, 'utf8')).toContain(`${resident.pid}\n`);
      for (const dir of cgroup.dirs) expect(existsSync(dir)).toBe(true);
    } finally {
      resident.kill('SIGKILL');
      await new Promise((r) => resident.once('exit', r));
    }
  });
});
