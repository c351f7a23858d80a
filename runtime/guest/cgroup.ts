import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ResourceLimits } from '../protocol/messages.ts';

export const CGROUP_ROOT = '/sys/fs/cgroup';

export function cgroupDir(containerId: string): string {
  return join(CGROUP_ROOT, `ctr-${containerId}`);
}

/** Creates the container's cgroup v2 group and applies its limits. */
export async function createCgroup(containerId: string, limits: ResourceLimits): Promise<string> {
  const dir = cgroupDir(containerId);
  await mkdir(dir);
  if (limits.cpuQuotaMicros !== undefined) {
    await writeFile(
      join(dir, 'cpu.max'),
      `${limits.cpuQuotaMicros} ${limits.cpuPeriodMicros ?? 100_000}`,
    );
  }
  if (limits.memoryMaxBytes !== undefined) {
    await writeFile(join(dir, 'memory.max'), String(limits.memoryMaxBytes));
    // No swap in the guest, but say so explicitly so the limit is the whole budget.
    await writeFile(join(dir, 'memory.swap.max'), '0').catch(() => undefined);
  }
  if (limits.pidsMax !== undefined) {
    await writeFile(join(dir, 'pids.max'), String(limits.pidsMax));
  }
  return dir;
}

/** Kills every process in the group (cgroup.kill, Linux 5.14+) and removes it once empty. */
export async function killCgroup(dir: string): Promise<void> {
  await writeFile(join(dir, 'cgroup.kill'), '1').catch(() => undefined);
}

export async function removeCgroup(dir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      // EBUSY until the killed processes are gone; they go within milliseconds.
      if (code !== 'EBUSY' || attempt > 200) throw err;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

export async function cgroupPids(dir: string): Promise<number[]> {
  const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map(Number);
}
