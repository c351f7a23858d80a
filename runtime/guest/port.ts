import { createReadStream, createWriteStream, openSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';

/** The agent's end of the host channel (a virtio-serial port, or a socket the vsock relay feeds). */
export interface AgentPort {
  input: Readable;
  output: Writable;
  path: string;
}

/** Finds /dev/vportNpM whose virtio-serial name is `name` (no udev in the guest to make symlinks). */
export async function findVirtioPort(name: string): Promise<string | undefined> {
  const ports = await readdir('/sys/class/virtio-ports').catch(() => []);
  for (const port of ports.sort()) {
    const portName = await readFile(`/sys/class/virtio-ports/${port}/name`, 'utf8').catch(() => '');
    if (portName.trim() === name) return `/dev/${port}`;
  }
  return undefined;
}

/**
 * Opens the host channel. A virtio-serial port may be opened only once, so
 * one read-write descriptor carries both directions.
 */
export async function openAgentPort(name: string, timeoutMs = 10_000): Promise<AgentPort> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const path = await findVirtioPort(name);
    if (path) {
      const fd = openSync(path, 'r+');
      return {
        path,
        input: createReadStream('', { fd, autoClose: false, highWaterMark: 64 * 1024 }),
        output: createWriteStream('', { fd, autoClose: false }),
      };
    }
    if (Date.now() > deadline) throw new Error(`virtio-serial port ${name} did not appear`);
    // Device probing finishes asynchronously after insmod; poll briefly.
    await new Promise((r) => setTimeout(r, 20));
  }
}
