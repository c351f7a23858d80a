import { z } from 'zod';
import type { ResourceLimits } from '../protocol/messages.ts';
import type { Any } from './codec.ts';
import { UnsupportedSpecError } from './spec-error.ts';

/**
 * An OCI LinuxResources (a bundle's `linux.resources`, or Update's
 * `resources`: JSON in a protobuf Any, the way containerd marshals it with
 * typeurl `types.containerd.io/opencontainers/runtime-spec/1/LinuxResources`)
 * as limits of the container's cgroup v2 in the guest. As in runc: 0 or
 * absent leaves a limit as it is, -1 removes it (`max`); anything else out of
 * range is refused by field.
 */
const LINUX_RESOURCES_TYPE = /(^|\/)LinuxResources$/;

const limit = (unit: string): z.ZodNumber =>
  z
    .number({ message: `must be a number of ${unit}` })
    .int({ message: `must be a whole number of ${unit}` })
    .min(-1, { message: `must be -1 (no limit), 0 (unchanged) or a positive number of ${unit}` });

/** cgroup v1's cpu.shares range, which CRI's shares are written in. */
const MIN_SHARES = 2;
const MAX_SHARES = 262_144;
const cpuset = z
  .string()
  .regex(/^(\d+(-\d+)?(,\d+(-\d+)?)*)?$/, { message: 'must be a list such as 0-3,6' });

export const linuxResourcesSchema = z.object({
  cpu: z
    .object({
      shares: z
        .number()
        .int()
        .refine((s) => s === 0 || (s >= MIN_SHARES && s <= MAX_SHARES), {
          message: `must be 0 (unchanged) or ${MIN_SHARES}-${MAX_SHARES}`,
        })
        .optional(),
      quota: limit('microseconds').optional(),
      period: z
        .number()
        .int()
        .nonnegative({ message: 'must be 0 (unchanged) or a positive number of microseconds' })
        .optional(),
      cpus: cpuset.optional(),
      mems: cpuset.optional(),
    })
    .optional(),
  memory: z
    .object({
      limit: limit('bytes').optional(),
      /** memory + swap, as in cgroup v1's memory.memsw.limit_in_bytes. */
      swap: limit('bytes').optional(),
    })
    .optional(),
  pids: z.object({ limit: limit('processes').optional() }).optional(),
});
export type LinuxResources = z.infer<typeof linuxResourcesSchema>;

function cgroupValue(value: number | undefined): number | 'max' | undefined {
  if (value === undefined || value === 0) return undefined;
  return value === -1 ? 'max' : value;
}

/**
 * cgroup v1 CPU shares (2-262144) to cgroup v2 cpu.weight (1-10000): the
 * linear map runc and crun apply (2 → 1, 1024 → 39, 262144 → 10000).
 */
export function cpuWeightFromShares(shares: number): number {
  return 1 + Math.floor(((shares - MIN_SHARES) * 9999) / (MAX_SHARES - MIN_SHARES));
}

/**
 * memory.swap.max from OCI's memory.swap, which counts memory and swap
 * together (runc's rule): swap − limit; -1 is no limit; a swap figure needs a
 * memory limit at least as large beside it.
 */
function swapMax(
  memory: NonNullable<LinuxResources['memory']>,
  field: string,
): number | 'max' | undefined {
  const { swap, limit: memoryLimit } = memory;
  if (swap === undefined || swap === 0) return undefined;
  if (swap === -1) return 'max';
  if (memoryLimit === undefined || memoryLimit <= 0)
    throw new UnsupportedSpecError(`${field}.memory.swap: set without a memory.limit`);
  if (swap < memoryLimit)
    throw new UnsupportedSpecError(
      `${field}.memory.swap: ${swap} is below memory.limit ${memoryLimit} (it counts memory and swap together)`,
    );
  return swap - memoryLimit;
}

/** The cgroup limits a LinuxResources asks for; throws UnsupportedSpecError naming the bad field. */
export function limitsFromLinuxResources(json: unknown, field: string): ResourceLimits {
  const parsed = linuxResourcesSchema.safeParse(json ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UnsupportedSpecError(`${[field, ...issue.path].join('.')}: ${issue.message}`);
  }
  const { cpu, memory, pids } = parsed.data;
  const quota = cgroupValue(cpu?.quota);
  const memoryMax = cgroupValue(memory?.limit);
  const swap = memory ? swapMax(memory, field) : undefined;
  const pidsMax = cgroupValue(pids?.limit);
  return {
    ...(quota === undefined ? {} : { cpuQuotaMicros: quota }),
    ...(quota !== undefined && cpu?.period ? { cpuPeriodMicros: cpu.period } : {}),
    ...(cpu?.shares ? { cpuWeight: cpuWeightFromShares(cpu.shares) } : {}),
    ...(cpu?.cpus ? { cpusetCpus: cpu.cpus } : {}),
    ...(cpu?.mems ? { cpusetMems: cpu.mems } : {}),
    ...(memoryMax === undefined ? {} : { memoryMaxBytes: memoryMax }),
    ...(swap === undefined ? {} : { swapMaxBytes: swap }),
    ...(pidsMax === undefined ? {} : { pidsMax }),
  };
}

/** Update's resources: the cgroup limits it asks for, or UnsupportedSpecError naming the field. */
export function resourceLimitsFromUpdate(resources: Any | null): ResourceLimits {
  if (!resources) throw new UnsupportedSpecError('resources: missing');
  if (!LINUX_RESOURCES_TYPE.test(resources.type_url))
    throw new UnsupportedSpecError(
      `resources: type ${JSON.stringify(resources.type_url)} is not an OCI LinuxResources`,
    );
  let json: unknown;
  try {
    json = JSON.parse(resources.value.toString('utf8'));
  } catch (err) {
    throw new UnsupportedSpecError(`resources: not LinuxResources JSON: ${(err as Error).message}`);
  }
  return limitsFromLinuxResources(json, 'resources');
}
