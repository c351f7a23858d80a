import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import type { ContainerSpec, ExecSpec } from '../sandbox/config.ts';

/**
 * The parts of an OCI runtime spec (the bundle's config.json, an exec's
 * process) the shim reads. Anything the VM cannot honour is refused by
 * name, never dropped silently.
 */
const processSchema = z.object({
  terminal: z.boolean().optional(),
  args: z.array(z.string()).min(1, { message: 'process.args: must name a program' }),
  env: z.array(z.string()).optional(),
  cwd: z.string().optional(),
  user: z.object({ uid: z.number().int(), gid: z.number().int() }).optional(),
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
      resources: z
        .object({
          cpu: z.object({ quota: z.number().optional(), period: z.number().optional() }).optional(),
          memory: z.object({ limit: z.number().optional() }).optional(),
          pids: z.object({ limit: z.number().optional() }).optional(),
        })
        .optional(),
    })
    .optional(),
});
export type OciSpec = z.infer<typeof ociSpecSchema>;

/** A spec the VM runtime cannot honour: the message names the field. */
export class UnsupportedSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedSpecError';
  }
}

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
 * The sandbox's container spec for a bundle whose root file system is
 * mounted at `rootfs`. tmpfs mounts become directories under `scratchDir`
 * (see scratchDirs()), which the caller creates.
 */
export function containerSpecFromOci(
  id: string,
  spec: OciSpec,
  rootfs: string,
  scratchDir: string,
): ContainerSpec {
  checkSupported(spec);
  const process = spec.process;
  if (!process) throw new UnsupportedSpecError('process: missing');
  const volumes: NonNullable<ContainerSpec['volumes']> = [];
  for (const [index, mount] of (spec.mounts ?? []).entries()) {
    if (GUEST_PROVIDED.has(mount.destination)) continue;
    const options = mount.options ?? [];
    if (mount.type === 'tmpfs') {
      // A scratch directory of the container's own (in its bundle, gone with it), not guest RAM.
      volumes.push({
        hostPath: join(scratchDir, String(index)),
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
    volumes.push({
      hostPath: mount.source,
      containerPath: mount.destination,
      readOnly: options.includes('ro'),
    });
  }
  const resources = spec.linux?.resources;
  const quota = resources?.cpu?.quota;
  const period = resources?.cpu?.period;
  return {
    id,
    rootfs,
    args: process.args,
    ...(process.env ? { env: process.env } : {}),
    ...(process.cwd ? { cwd: process.cwd } : {}),
    ...(process.user ? { user: { uid: process.user.uid, gid: process.user.gid } } : {}),
    ...(spec.hostname ? { hostname: spec.hostname } : {}),
    volumes,
    resources: {
      ...(quota && quota > 0 && period ? { cpus: quota / period } : {}),
      ...(resources?.memory?.limit && resources.memory.limit > 0
        ? { memoryBytes: resources.memory.limit }
        : {}),
      ...(resources?.pids?.limit && resources.pids.limit > 0
        ? { pidsMax: resources.pids.limit }
        : {}),
    },
  };
}

/** The scratch directories containerSpecFromOci() names for the spec's tmpfs mounts. */
export function scratchDirs(spec: OciSpec, scratchDir: string): string[] {
  return (spec.mounts ?? []).flatMap((mount, index) =>
    mount.type === 'tmpfs' && !GUEST_PROVIDED.has(mount.destination)
      ? [join(scratchDir, String(index))]
      : [],
  );
}

export function execSpecFromOci(execId: string, process: OciProcess): ExecSpec {
  return {
    id: execId,
    terminal: process.terminal ?? false,
    args: process.args,
    ...(process.env ? { env: process.env } : {}),
    ...(process.cwd ? { cwd: process.cwd } : {}),
    ...(process.user ? { user: { uid: process.user.uid, gid: process.user.gid } } : {}),
  };
}
