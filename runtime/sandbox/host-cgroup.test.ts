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

  it('holds the processes put in it, and removes only what it made, once empty', async () => {
    // A parent someone else made (kubelet's pod cgroup): never removed.
    const { hierarchies } = await cgroupHierarchies();
    for (const { mountPoint } of hierarchies) {
      await mkdir(join(mountPoint, parent));
      madeByHand.push(join(mountPoint, parent));
    }
    const cgroup = await HostCgroup.create(`/${parent}/made/sandbox`);
    const child = spawn('sleep', ['600'], { stdio: 'ignore' });
    try {
      await cgroup.add(child.pid!);
      const procs = await currentCgroupProcs(child.pid!);
      expect(procs).toEqual(cgroup.procsFiles);
      expect(await readFile(`/proc/${child.pid}/cgroup`, 'utf8')).toContain(
        `:/${parent}/made/sandbox\n`,
      );
      // Busy: a cgroup with a process in it is never lost track of.
      await expect(cgroup.release()).rejects.toThrow(/cannot remove cgroup/);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    await cgroup.release();
    for (const { mountPoint } of hierarchies) {
      expect(existsSync(join(mountPoint, parent, 'made'))).toBe(false);
      expect(existsSync(join(mountPoint, parent))).toBe(true);
    }
  });
});
