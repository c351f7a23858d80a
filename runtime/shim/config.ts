import { createHash } from 'node:crypto';
import { z } from 'zod';
import { defaultSandboxRunRoot } from '../paths.ts';

/**
 * The shim's settings. containerd starts shims with its own environment, so
 * an operator sets these where containerd's service is defined (see
 * deploy/runtime/). The guest image is built once per node by
 * `edgebox sandbox image build --out DIR`; a shim never builds one.
 */
const shimEnvSchema = z.object({
  EDGEBOX_GUEST_IMAGE: z.string().startsWith('/').default('/var/lib/edgebox/guest-image'),
  EDGEBOX_RUN_DIR: z.string().startsWith('/').optional(),
  EDGEBOX_VM_MEMORY_MIB: z.coerce.number().int().min(128).default(512),
  EDGEBOX_VM_CPUS: z.coerce.number().int().min(1).default(1),
  EDGEBOX_ACCEL: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
});

export interface ShimConfig {
  guestImageDir: string;
  runRoot: string;
  memoryMiB: number;
  cpus: number;
  accel: 'auto' | 'kvm' | 'tcg';
}

export function shimConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ShimConfig {
  const parsed = shimEnvSchema.safeParse(env);
  if (!parsed.success) throw new Error(`shim settings: ${z.prettifyError(parsed.error)}`);
  const e = parsed.data;
  return {
    guestImageDir: e.EDGEBOX_GUEST_IMAGE,
    runRoot: e.EDGEBOX_RUN_DIR ?? defaultSandboxRunRoot(env),
    memoryMiB: e.EDGEBOX_VM_MEMORY_MIB,
    cpus: e.EDGEBOX_VM_CPUS,
    accel: e.EDGEBOX_ACCEL,
  };
}

/**
 * The sandbox (VM) id of a pod: its run directory's name, so short enough
 * for the unix sockets inside it (sun_path is 108 bytes). CRI's ids are 64
 * hex digits; longer ids keep a readable prefix and a hash of the whole.
 */
export function sandboxIdFor(podId: string): string {
  if (podId.length <= 32) return podId;
  return `${podId.slice(0, 20)}-${createHash('sha256').update(podId).digest('hex').slice(0, 11)}`;
}
