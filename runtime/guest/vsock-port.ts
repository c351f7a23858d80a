import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { CHANNEL_BOOT_ARG_PREFIX } from '../protocol/guest-layout.ts';
import type { AgentPort } from './port.ts';

/** The channel the host chose, from the kernel command line (serial unless it says vsock). */
export function bootChannel(cmdline: string): 'vsock' | 'serial' {
  const arg = cmdline
    .trim()
    .split(/\s+/)
    .findLast((a) => a.startsWith(CHANNEL_BOOT_ARG_PREFIX));
  return arg === `${CHANNEL_BOOT_ARG_PREFIX}vsock` ? 'vsock' : 'serial';
}

export interface VsockPortOptions {
  /** Unix socket only the agent listens on; socat relays each vsock connection to it. */
  socketPath: string;
  port: number;
  socatPath: string;
  /** Directory of the shared libraries socat needs beyond the initramfs's. */
  socatLibraryPath?: string;
  /** socat's listening address; tests swap it for a UNIX-LISTEN one. */
  listenAddress?: string;
}

/**
 * Waits for the host on vsock. Node has no AF_VSOCK, so socat listens on the
 * vsock port (fork: a new host connection gets a new relay) and connects each
 * one to the agent's unix socket (mode 0600 in a 0700 directory). The first
 * connection is the host's; later ones are hung up on, so nothing else in
 * the guest can reach the agent through the relay.
 */
export async function openVsockPort(
  options: VsockPortOptions,
): Promise<AgentPort & { relay: ChildProcess }> {
  await mkdir(dirname(options.socketPath), { recursive: true, mode: 0o700 });
  await rm(options.socketPath, { force: true });
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.socketPath, () => resolve());
  });
  await chmod(options.socketPath, 0o600);
  const listen = options.listenAddress ?? `VSOCK-LISTEN:${options.port},reuseaddr,fork`;
  // Its complaints go to the agent's stderr, the guest console the host keeps.
  const relay = spawn(
    options.socatPath,
    ['-b', '65536', listen, `UNIX-CONNECT:${options.socketPath}`],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      ...(options.socatLibraryPath
        ? { env: { ...process.env, LD_LIBRARY_PATH: options.socatLibraryPath } }
        : {}),
    },
  );
  try {
    const socket = await new Promise<Socket>((resolve, reject) => {
      server.once('connection', resolve);
      relay.once('error', (err) =>
        reject(new Error(`cannot start the vsock relay ${options.socatPath}: ${err.message}`)),
      );
      relay.once('exit', (code, signal) =>
        reject(
          new Error(
            `the vsock relay (socat ${listen}) exited (${signal ?? `code ${code}`}) before the host connected`,
          ),
        ),
      );
    });
    // One host connection; any later one (the relay forks per connection) is hung up on.
    server.on('connection', (extra: Socket) => extra.destroy());
    return { path: `vsock port ${options.port}`, input: socket, output: socket, relay };
  } catch (err) {
    server.close();
    throw err;
  }
}
