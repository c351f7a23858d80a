import { constants } from 'node:fs';
import { access, open } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/** How the host reaches the guest agent; the framing on top is the same for both. */
export type AgentChannelKind = 'vsock' | 'serial';
export type RequestedChannel = AgentChannelKind | 'auto';

export const VHOST_VSOCK_DEVICE = '/dev/vhost-vsock';

/** What the vsock channel needs on this host, and what is missing when it cannot work. */
export type VsockProbe =
  { available: true; socatPath: string } | { available: false; missing: string[] };

export interface VsockProbeOptions {
  /** The vhost-vsock device QEMU opens for `vhost-vsock-device`. */
  vhostVsockPath?: string;
  /** A PATH-style list of directories to find socat in. */
  searchPath?: string;
}

/** The first `name` in the directories of `searchPath` that this process may execute. */
export async function findExecutable(
  name: string,
  searchPath: string,
): Promise<string | undefined> {
  for (const dir of searchPath.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here (or not executable); try the next directory.
    }
  }
  return undefined;
}

async function vhostVsockProblem(path: string): Promise<string | undefined> {
  let handle;
  try {
    // QEMU opens it read-write; existing is not enough (permissions, a stale node).
    handle = await open(path, 'r+');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return `${path} does not exist (no vhost_vsock module on this host)`;
    return `${path} cannot be opened read-write (${code ?? (err as Error).message})`;
  } finally {
    await handle?.close();
  }
  return undefined;
}

/**
 * Checks what the host end of a vsock channel needs: the vhost-vsock device
 * (QEMU's `vhost-vsock-device` is backed by it) and socat (Node has no
 * AF_VSOCK, so socat carries the connection to a pipe).
 */
export async function probeVsock(options: VsockProbeOptions = {}): Promise<VsockProbe> {
  const missing: string[] = [];
  const device = await vhostVsockProblem(options.vhostVsockPath ?? VHOST_VSOCK_DEVICE);
  if (device) missing.push(device);
  const searchPath = options.searchPath ?? process.env.PATH ?? '/usr/bin:/bin';
  const socatPath = await findExecutable('socat', searchPath);
  if (!socatPath) missing.push('socat is not on PATH (install the Debian package socat)');
  if (missing.length > 0 || !socatPath) return { available: false, missing };
  return { available: true, socatPath };
}

export class ChannelUnavailableError extends Error {
  constructor(missing: readonly string[]) {
    super(`the vsock agent channel cannot work on this host: ${missing.join('; ')}`);
    this.name = 'ChannelUnavailableError';
  }
}

export type SelectedChannel =
  | { kind: 'vsock'; socatPath: string }
  | { kind: 'serial'; /** Why auto did not pick vsock. */ vsockMissing?: string[] };

/**
 * auto: vsock when the host can do it, else virtio-serial. A forced vsock
 * where it cannot work throws, naming what is missing.
 */
export async function selectAgentChannel(
  requested: RequestedChannel,
  probe: () => Promise<VsockProbe> = () => probeVsock(),
): Promise<SelectedChannel> {
  if (requested === 'serial') return { kind: 'serial' };
  const result = await probe();
  if (result.available) return { kind: 'vsock', socatPath: result.socatPath };
  if (requested === 'vsock') throw new ChannelUnavailableError(result.missing);
  return { kind: 'serial', vsockMissing: result.missing };
}
