import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { podVolumeSubPathSchema, type ContainerSpec, type ExecSpec } from '../sandbox/config.ts';
import { RLIMIT_TYPES } from '../protocol/messages.ts';
import { limitsFromLinuxResources } from './resource-update.ts';
import { UnsupportedSpecError } from './spec-error.ts';

/**
 * The parts of an OCI runtime spec (the bundle's config.json, an exec's
 * process) the shim reads. Anything the VM cannot honour is refused by
 * name, except the in-guest confinement (capabilities, seccomp, AppArmor):
 * the VM is the pod's boundary, and refusing them would refuse every pod.
 */
const processSchema = z.object({
  terminal: z.boolean().optional(),
  args: z.array(z.string()).min(1, { message: 'process.args: must name a program' }),
  env: z.array(z.string()).optional(),
  cwd: z.string().optional(),
  user: z
    .object({
      uid: z.number().int(),
      gid: z.number().int(),
      additionalGids: z.array(z.number().int()).optional(),
    })
    .optional(),
  rlimits: z.array(z.object({ type: z.string(), hard: z.number(), soft: z.number() })).optional(),
  noNewPrivileges: z.boolean().optional(),
});
export type OciProcess = z.infer<typeof processSchema>;

const mountSchema = z.object({
  destination: z.string(),
  type: z.string().optional(),
  source: z.string().optional(),
  options: z.array(z.string()).optional(),
});

const ociSpecSchema = z.object({
  process: processSchema.optional(),
  root: z.object({ path: z.string(), readonly: z.boolean().optional() }).optional(),
  hostname: z.string().optional(),
  mounts: z.array(mountSchema).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  linux: z
    .object({
      namespaces: z.array(z.object({ type: z.string(), path: z.string().optional() })).optional(),
      devices: z.array(z.object({ path: z.string() })).optional(),
      cgroupsPath: z.string().optional(),
      /** Checked field by field by limitsFromLinuxResources. */
      resources: z.unknown().optional(),
    })
    .optional(),
});
export type OciSpec = z.infer<typeof ociSpecSchema>;

export async function readBundleSpec(bundle: string): Promise<OciSpec> {
  const path = join(bundle, 'config.json');
  const parsed = ociSpecSchema.safeParse(JSON.parse(await readFile(path, 'utf8')));
  if (!parsed.success) throw new UnsupportedSpecError(`${path}: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export function parseProcess(json: Buffer): OciProcess {
  const parsed = processSchema.safeParse(JSON.parse(json.toString('utf8')));
  if (!parsed.success)
    throw new UnsupportedSpecError(`exec process: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** CRI's annotations that group a pod's containers into one sandbox. */
export const CONTAINER_TYPE_ANNOTATION = 'io.kubernetes.cri.container-type';
export const SANDBOX_ID_ANNOTATION = 'io.kubernetes.cri.sandbox-id';

export type ContainerRole =
  | { kind: 'pod'; podId: string }
  | { kind: 'sandbox'; podId: string }
  | { kind: 'container'; podId: string };

/**
 * `sandbox`: a CRI pod's pause container (the VM is the pod, nothing runs in
 * it); `container`: a CRI container of pod `podId`; `pod`: a container
 * created without CRI (ctr run), its own pod.
 */
export function containerRole(id: string, spec: OciSpec): ContainerRole {
  const type = spec.annotations?.[CONTAINER_TYPE_ANNOTATION];
  if (type === 'sandbox') return { kind: 'sandbox', podId: id };
  if (type === 'container') {
    const podId = spec.annotations?.[SANDBOX_ID_ANNOTATION];
    if (!podId)
      throw new UnsupportedSpecError(
        `annotations: ${CONTAINER_TYPE_ANNOTATION}=container without ${SANDBOX_ID_ANNOTATION}`,
      );
    return { kind: 'container', podId };
  }
  return { kind: 'pod', podId: id };
}

/** Namespaces a pod shares with the host when they are absent from the spec. */
const REQUIRED_NAMESPACES: Record<string, string> = {
  network: 'hostNetwork',
  pid: 'hostPID',
  ipc: 'hostIPC',
};

/** Mounts the guest makes itself for every container (proc, sys, dev, cgroup, shm). */
const GUEST_PROVIDED = new Set([
  '/proc',
  '/sys',
  '/sys/fs/cgroup',
  '/dev',
  '/dev/pts',
  '/dev/shm',
  '/dev/mqueue',
]);

/** Refuses what a VM pod cannot have: host namespaces, host devices. */
export function checkSupported(spec: OciSpec): void {
  const namespaces = spec.linux?.namespaces ?? [];
  for (const [type, field] of Object.entries(REQUIRED_NAMESPACES)) {
    if (!namespaces.some((ns) => ns.type === type))
      throw new UnsupportedSpecError(
        `linux.namespaces: no ${type} namespace (the pod asks for ${field}); a VM pod cannot share the host's`,
      );
  }
  const device = spec.linux?.devices?.[0];
  if (device)
    throw new UnsupportedSpecError(
      `linux.devices[0] (${device.path}): host devices cannot be passed into the VM (a privileged pod?)`,
    );
}

/**
 * The pod volume a kubelet emptyDir bind stands for: kubelet makes
 * `<pod dir>/volumes/kubernetes.io~empty-dir/<name>` (name a DNS label) and
 * binds it into each container mounting it. For a `subPath` it binds a bind
 * mount of the directory within (at `<pod dir>/volume-subpaths/...`), whose
 * root in mountinfo names it.
 */
const EMPTY_DIR_NAME = String.raw`/volumes/kubernetes\.io~empty-dir/([a-z0-9](?:[-a-z0-9]*[a-z0-9])?)`;
const EMPTY_DIR_SOURCE = new RegExp(`${EMPTY_DIR_NAME}$`);
const EMPTY_DIR_MOUNT_ROOT = new RegExp(`${EMPTY_DIR_NAME}(?:/(.+))?$`);

/** The root (directory within its file system) of the mount at `path`, if `path` is a mount point. */
export type MountRootLookup = (path: string) => string | undefined;

function podVolumeOf(
  source: string,
  mountRoot: MountRootLookup,
  field: string,
): { podVolume: string; subPath?: string } | undefined {
  const name = EMPTY_DIR_SOURCE.exec(source)?.[1];
  if (name) return { podVolume: name };
  const root = mountRoot(source);
  const match = root === undefined ? null : EMPTY_DIR_MOUNT_ROOT.exec(root);
  if (!match?.[1]) return undefined;
  const subPath = match[2];
  if (subPath === undefined) return { podVolume: match[1] };
  const parsed = podVolumeSubPathSchema.safeParse(subPath);
  if (!parsed.success)
    throw new UnsupportedSpecError(
      `${field}: subPath ${JSON.stringify(subPath)} of emptyDir ${match[1]} (mounted at ${source}) ${parsed.error.issues[0]?.message ?? 'is refused'}`,
    );
  return { podVolume: match[1], subPath };
}

/**
 * The sandbox's container spec for a bundle whose root file system is
 * mounted at `rootfs`. The volumes the pod owns are served from the
 * sandbox's disk, bounded with the writable layers (as kubelet's
 * ephemeral-storage counts them together): an emptyDir, or a subPath of one
 * (recognised by `mountRoot`), becomes the pod volume of its name, shared by
 * the pod's containers (the host directory kubelet made stays unused); a
 * tmpfs mount, the container's own pod volume, not guest RAM. Other binds
 * are host paths, as they are.
 */
export function containerSpecFromOci(
  id: string,
  spec: OciSpec,
  rootfs: string,
  mountRoot: MountRootLookup,
): ContainerSpec {
  checkSupported(spec);
  const process = spec.process;
  if (!process) throw new UnsupportedSpecError('process: missing');
  const volumes: NonNullable<ContainerSpec['volumes']> = [];
  for (const [index, mount] of (spec.mounts ?? []).entries()) {
    if (GUEST_PROVIDED.has(mount.destination)) continue;
    const options = mount.options ?? [];
    if (mount.type === 'tmpfs') {
      volumes.push({
        podVolume: `tmpfs-${index}`,
        scope: 'container',
        containerPath: mount.destination,
        readOnly: false,
      });
      continue;
    }
    const isBind = mount.type === 'bind' || options.includes('bind') || options.includes('rbind');
    if (!isBind || !mount.source || !isAbsolute(mount.source))
      throw new UnsupportedSpecError(
        `mounts[${index}] (${mount.type ?? 'no type'} at ${mount.destination}): only bind mounts of host paths reach the VM`,
      );
    const podVolume = podVolumeOf(
      mount.source,
      mountRoot,
      `mounts[${index}] (bind at ${mount.destination})`,
    );
    volumes.push({
      ...(podVolume ?? { hostPath: mount.source }),
      containerPath: mount.destination,
      readOnly: options.includes('ro'),
    });
  }
  const limits = limitsFromLinuxResources(spec.linux?.resources, 'linux.resources');
  const quota = limits.cpuQuotaMicros;
  return {
    id,
    rootfs,
    ...processFields(process, 'process'),
    ...(spec.hostname ? { hostname: spec.hostname } : {}),
    volumes,
    resources: {
      ...(typeof quota === 'number'
        ? { cpus: quota / (limits.cpuPeriodMicros ?? DEFAULT_CPU_PERIOD_MICROS) }
        : {}),
      ...(typeof limits.memoryMaxBytes === 'number' ? { memoryBytes: limits.memoryMaxBytes } : {}),
      ...(typeof limits.pidsMax === 'number' ? { pidsMax: limits.pidsMax } : {}),
      ...(limits.cpuWeight === undefined ? {} : { cpuWeight: limits.cpuWeight }),
      ...(limits.cpusetCpus === undefined ? {} : { cpusetCpus: limits.cpusetCpus }),
      ...(limits.cpusetMems === undefined ? {} : { cpusetMems: limits.cpusetMems }),
      ...(limits.swapMaxBytes === undefined ? {} : { swapMaxBytes: limits.swapMaxBytes }),
    },
  };
}

/** cgroup v2's cpu.max period when the spec gives a quota alone. */
const DEFAULT_CPU_PERIOD_MICROS = 100_000;

/** OCI writes "no limit" as the largest uint64, which JSON hands JavaScript rounded. */
const RLIM_INFINITY_FLOOR = 2 ** 63;

/**
 * The process fields the guest honours: args, env, cwd, uid and gid, rlimits
 * (set by the guest's shell before the exec), noNewPrivileges. The guest's
 * nsenter sets no supplementary groups: for uid 0 they change nothing (root
 * passes every permission check, and the guest keeps every capability), and
 * containerd lists the image's /etc/group memberships there, so refusing them
 * would refuse root in most images (alpine's root is in seven groups); for
 * any other user they are refused by field rather than silently dropped.
 */
function processFields(
  process: OciProcess,
  field: string,
): Pick<ExecSpec, 'args' | 'env' | 'cwd' | 'user' | 'rlimits' | 'noNewPrivileges'> {
  const extraGroups =
    process.user?.uid === 0
      ? []
      : (process.user?.additionalGids ?? []).filter((gid) => gid !== process.user?.gid);
  if (extraGroups.length > 0)
    throw new UnsupportedSpecError(
      `${field}.user.additionalGids: supplementary groups (${extraGroups.join(', ')}) are not supported by edgebox yet`,
    );
  const rlimits = (process.rlimits ?? []).map((rlimit, index) => {
    const type = RLIMIT_TYPES.find((t) => t === rlimit.type);
    if (!type)
      throw new UnsupportedSpecError(
        `${field}.rlimits[${index}]: ${rlimit.type} cannot be set in the guest (it takes ${RLIMIT_TYPES.join(', ')})`,
      );
    const value = (v: number, which: string): number | 'unlimited' => {
      if (v >= RLIM_INFINITY_FLOOR) return 'unlimited';
      if (!Number.isSafeInteger(v) || v < 0)
        throw new UnsupportedSpecError(
          `${field}.rlimits[${index}].${which}: must be a whole number, not ${v}`,
        );
      return v;
    };
    const soft = value(rlimit.soft, 'soft');
    const hard = value(rlimit.hard, 'hard');
    if (hard !== 'unlimited' && (soft === 'unlimited' || soft > hard))
      throw new UnsupportedSpecError(
        `${field}.rlimits[${index}] (${type}): soft limit ${soft} above hard limit ${hard}`,
      );
    return { type, soft, hard };
  });
  return {
    args: process.args,
    ...(process.env ? { env: process.env } : {}),
    ...(process.cwd ? { cwd: process.cwd } : {}),
    ...(process.user ? { user: { uid: process.user.uid, gid: process.user.gid } } : {}),
    ...(rlimits.length > 0 ? { rlimits } : {}),
    ...(process.noNewPrivileges ? { noNewPrivileges: true } : {}),
  };
}

export function execSpecFromOci(execId: string, process: OciProcess): ExecSpec {
  return {
    id: execId,
    terminal: process.terminal ?? false,
    ...processFields(process, 'exec process'),
  };
}
