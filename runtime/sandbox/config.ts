import { z } from 'zod';
import {
  objectIdSchema,
  processUserSchema,
  resourceLimitsSchema,
  rlimitSchema,
} from '../protocol/messages.ts';

/** Paths on the host; absolute, so none can be taken for an option of mount(8) or QEMU. */
const hostPathSchema = z.string().startsWith('/', { message: 'must be an absolute path' });

/** Devices handed to the VM at creation (SR-IOV VFs through VFIO, for the SR-IOV issue). */
export const deviceSchema = z.object({
  kind: z.literal('vfio'),
  hostAddress: z.string().regex(/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/, {
    message: 'must be a PCI address like 0000:3b:00.2',
  }),
});

const ipv4 = z.string().regex(/^\d+\.\d+\.\d+\.\d+$/, { message: 'must be an IPv4 address' });
const ipv4Prefix = z
  .string()
  .regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, { message: 'must be an IPv4 address/prefix' });

export const sandboxConfigSchema = z.object({
  id: objectIdSchema,
  memoryMiB: z
    .number()
    .int()
    .min(128)
    .max(1024 * 1024)
    .default(512),
  cpus: z.number().int().min(1).max(64).default(1),
  accel: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
  /** Host-guest agent channel: auto = vsock where the host has vhost-vsock and socat, else virtio-serial. */
  channel: z.enum(['auto', 'vsock', 'serial']).default('auto'),
  devices: z.array(deviceSchema).default([]),
  /**
   * none: the guest has loopback only (no NIC, so no NIC emulation or
   * user-mode network stack to attack); isolated: a NIC on a user-mode stack
   * that reaches nothing. The shim's network endpoints add real ones.
   */
  network: z.enum(['none', 'isolated']).default('none'),
  /** Bound of the writable layers of the pod's container rootfs and its pod volumes (a sparse ext4 image). */
  diskMiB: z
    .number()
    .int()
    .min(16)
    .max(1024 * 1024)
    .default(2048),
  /** Where the disk image lives; the run directory when unset (put it on disk, not tmpfs). */
  diskDir: hostPathSchema.optional(),
  /** File descriptors virtiofsd may hold (one per inode the guest looked up, one per open file). */
  virtiofsdFdLimit: z.number().int().min(64).max(1_048_576).optional(),
  /**
   * The host cgroup QEMU, virtiofsd and the relays run in, from each
   * hierarchy's root (made if missing, removed at teardown if made):
   * `edgebox/<id>` when unset; the shim passes the pod's OCI cgroupsPath.
   */
  cgroupPath: z
    .string()
    .regex(/^\/?[A-Za-z0-9_.@:-]+(\/[A-Za-z0-9_.@:-]+)*$/, {
      message: 'must be a cgroup path like kubepods/pod1/abc',
    })
    .refine((p) => !p.split('/').some((part) => part === '..' || part === '.'), {
      message: 'must not hold . or ..',
    })
    .optional(),
  /** Parent of the run directory; defaults by privilege (see paths.ts). */
  runRoot: hostPathSchema.optional(),
  cacheDir: hostPathSchema.optional(),
  image: z.object({
    kernelPath: hostPathSchema,
    initramfsPath: hostPathSchema,
    runtimePath: hostPathSchema,
  }),
  /**
   * The pod network the shim attached (runtime/network): the guest's eth0
   * takes the pod interface's MAC, address, gateway, MTU and routes. Replaces
   * `network`'s NIC.
   */
  podNetwork: z
    .object({
      netnsPath: hostPathSchema,
      tapName: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/),
      mac: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/),
      address: ipv4Prefix,
      gateway: ipv4.optional(),
      mtu: z.number().int().min(68).max(65535),
      /** Routes besides the default one (the kernel command line bounds how many). */
      routes: z
        .array(z.object({ dst: ipv4Prefix, via: ipv4.optional() }))
        .max(16)
        .default([]),
    })
    .optional(),
  /** Boot to agent-ready budget: generous, since emulated boots take seconds. */
  agentReadyTimeoutMs: z.number().int().positive().default(120_000),
});
export type SandboxConfig = z.input<typeof sandboxConfigSchema>;
export type ResolvedSandboxConfig = z.output<typeof sandboxConfigSchema>;

/** A directory name on the sandbox's disk: one path segment, never `.` or `..`. */
export const podVolumeNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,128}$/, {
    message: 'must be 1-128 characters of [A-Za-z0-9_.-] (one path segment)',
  })
  .refine((name) => name !== '.' && name !== '..', { message: 'must not be . or ..' });

/**
 * A directory within a pod volume (Kubernetes `subPath`): relative, each
 * segment a safe name (never `.`, `..` or empty), made on first use.
 */
export const podVolumeSubPathSchema = z
  .string()
  .max(1024)
  .refine(
    (path) => path.split('/').every((segment) => podVolumeNameSchema.safeParse(segment).success),
    {
      message:
        'must be a relative path of segments of 1-128 characters of [A-Za-z0-9_.-], never . or ..',
    },
  );

const volumeTarget = {
  containerPath: z.string().startsWith('/'),
  readOnly: z.boolean().default(false),
};

/**
 * A host path (the operator's, unbounded), or a pod volume: a directory on
 * the sandbox's disk, made empty on first use and shared by every container
 * naming it, so it counts against `diskMiB` with the writable layers
 * (Kubernetes emptyDir). `scope: container` keeps it the container's own,
 * removed with it (an OCI tmpfs mount). `subPath` mounts a directory within
 * it instead (Kubernetes subPath).
 */
export const volumeSchema = z.union([
  z.object({ hostPath: hostPathSchema, ...volumeTarget }).strict(),
  z
    .object({
      podVolume: podVolumeNameSchema,
      subPath: podVolumeSubPathSchema.optional(),
      scope: z.enum(['pod', 'container']).default('pod'),
      ...volumeTarget,
    })
    .strict(),
]);

/** An OCI-style container spec as the host side takes it (host paths, not share paths). */
export const containerSpecSchema = z.object({
  id: objectIdSchema,
  rootfs: hostPathSchema,
  args: z.array(z.string()).min(1),
  env: z
    .array(z.string().regex(/^[^=]+=/, { message: 'must be NAME=value' }))
    .default(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']),
  cwd: z.string().startsWith('/').default('/'),
  user: processUserSchema.default({ uid: 0, gid: 0 }),
  rlimits: z.array(rlimitSchema).optional(),
  noNewPrivileges: z.boolean().optional(),
  hostname: z.string().max(64).optional(),
  /** The container's process reads a pipe fed through writeStdin()/closeStdin(). */
  stdin: z.boolean().default(false),
  /** A pseudo-terminal for the container's process (stdout carries all output). */
  terminal: z.boolean().default(false),
  /** Share the rootfs read-only instead of under a writable layer on the sandbox's disk. */
  readOnlyRootfs: z.boolean().default(false),
  volumes: z.array(volumeSchema).default([]),
  resources: z
    .object({
      /** CPUs as a fraction (0.5 = half a CPU), enforced with cpu.max. */
      cpus: z.number().positive().optional(),
      memoryBytes: z.number().int().positive().optional(),
      pidsMax: z.number().int().positive().optional(),
      cpuWeight: resourceLimitsSchema.shape.cpuWeight,
      cpusetCpus: resourceLimitsSchema.shape.cpusetCpus,
      cpusetMems: resourceLimitsSchema.shape.cpusetMems,
      swapMaxBytes: resourceLimitsSchema.shape.swapMaxBytes,
    })
    .default({}),
});
export type ContainerSpec = z.input<typeof containerSpecSchema>;
/** A container spec as validated: defaults filled in. */
export type ResolvedContainerSpec = z.output<typeof containerSpecSchema>;

export const execSpecSchema = z.object({
  id: objectIdSchema,
  args: z.array(z.string()).min(1),
  env: z
    .array(z.string())
    .default(['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']),
  cwd: z.string().startsWith('/').default('/'),
  user: processUserSchema.default({ uid: 0, gid: 0 }),
  rlimits: z.array(rlimitSchema).optional(),
  noNewPrivileges: z.boolean().optional(),
  /** Fed through writeStdin()/closeStdin(); without it the process reads /dev/null. */
  stdin: z.boolean().default(false),
  /** A pseudo-terminal (stdout carries all output), sized with resizeTerminal(). */
  terminal: z.boolean().default(false),
});
export type ExecSpec = z.input<typeof execSpecSchema>;
