import { z } from 'zod';
import type { ResourceLimits } from '../protocol/messages.ts';
import type { Any } from './codec.ts';
import { UnsupportedSpecError } from './oci-spec.ts';

/**
 * Update's `resources`: an OCI LinuxResources as JSON in a protobuf Any, the
 * way containerd marshals it (typeurl: `types.containerd.io/opencontainers/
 * runtime-spec/1/LinuxResources`) and runc reads it. Of it, the guest's
 * cgroup takes the CPU quota and period, the memory limit and the pids
 * limit. As in runc: 0 or absent leaves a limit as it is, -1 removes it
 * (`max`); anything else below zero is refused by field.
 */
const LINUX_RESOURCES_TYPE = /(^|\/)LinuxResources$/;

const limit = (unit: string): z.ZodNumber =>
  z
    .number({ message: `must be a number of ${unit}` })
    .int({ message: `must be a whole number of ${unit}` })
    .min(-1, { message: `must be -1 (no limit), 0 (unchanged) or a positive number of ${unit}` });

const linuxResourcesSchema = z.object({
  cpu: z
    .object({
      quota: limit('microseconds').optional(),
      period: z
        .number()
        .int()
        .nonnegative({ message: 'must be 0 (unchanged) or a positive number of microseconds' })
        .optional(),
    })
    .optional(),
  memory: z.object({ limit: limit('bytes').optional() }).optional(),
  pids: z.object({ limit: limit('processes').optional() }).optional(),
});

function cgroupValue(value: number | undefined): number | 'max' | undefined {
  if (value === undefined || value === 0) return undefined;
  return value === -1 ? 'max' : value;
}

/** The cgroup limits an Update asks for; throws UnsupportedSpecError naming the bad field. */
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
  const parsed = linuxResourcesSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UnsupportedSpecError(`resources.${issue.path.join('.')}: ${issue.message}`);
  }
  const { cpu, memory, pids } = parsed.data;
  const quota = cgroupValue(cpu?.quota);
  const memoryMax = cgroupValue(memory?.limit);
  const pidsMax = cgroupValue(pids?.limit);
  return {
    ...(quota === undefined ? {} : { cpuQuotaMicros: quota }),
    ...(quota !== undefined && cpu?.period ? { cpuPeriodMicros: cpu.period } : {}),
    ...(memoryMax === undefined ? {} : { memoryMaxBytes: memoryMax }),
    ...(pidsMax === undefined ? {} : { pidsMax }),
  };
}
