import { readFileSync } from 'node:fs';
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
  await applyLimits(dir, limits);
  return dir;
}

/**
 * Writes the limits that are set into the group's files; absent ones stay as
 * they are. cpu.max takes quota and period together, so a period alone is
 * not written (the quota's absence means "unchanged", not "max").
 */
export async function applyLimits(dir: string, limits: ResourceLimits): Promise<void> {
  if (limits.cpuQuotaMicros !== undefined)
    await writeLimit(
      dir,
      'cpu.max',
      `${limits.cpuQuotaMicros} ${limits.cpuPeriodMicros ?? 100_000}`,
    );
  if (limits.cpuWeight !== undefined) await writeLimit(dir, 'cpu.weight', limits.cpuWeight);
  if (limits.cpusetMems !== undefined) await writeLimit(dir, 'cpuset.mems', limits.cpusetMems);
  if (limits.cpusetCpus !== undefined) await writeLimit(dir, 'cpuset.cpus', limits.cpusetCpus);
  if (limits.memoryMaxBytes !== undefined)
    await writeLimit(dir, 'memory.max', limits.memoryMaxBytes);
  if (limits.swapMaxBytes !== undefined)
    await writeLimit(dir, 'memory.swap.max', limits.swapMaxBytes);
  else if (limits.memoryMaxBytes !== undefined)
    // No swap in the guest, but say so explicitly so the limit is the whole budget.
    await writeFile(join(dir, 'memory.swap.max'), '0').catch(() => undefined);
  if (limits.pidsMax !== undefined) await writeLimit(dir, 'pids.max', limits.pidsMax);
}

/** One cgroup file written; a refusal names the file and the value (the kernel says only EINVAL). */
async function writeLimit(dir: string, file: string, value: string | number): Promise<void> {
  try {
    await writeFile(join(dir, file), String(value));
  } catch (err) {
    throw new Error(`${file} ${value}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * How many processes of the group the kernel's OOM killer has killed so far
 * (memory.events `oom_kill`). Synchronous so that an exit handler can read it
 * before it reports the exit: a small pseudo-file read, no disk behind it.
 */
export function oomKillCount(dir: string): number {
  let text: string;
  try {
    text = readFileSync(join(dir, 'memory.events'), 'utf8');
  } catch {
    return 0;
  }
  return Number(/^oom_kill (\d+)$/m.exec(text)?.[1] ?? 0);
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
