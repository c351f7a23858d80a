import { stat, mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { findExecutable } from '../agent-client/channel-select.ts';
import { bootChannel, openVsockPort } from './vsock-port.ts';

/**
 * The guest end with a REAL socat: only the listening address differs
 * (UNIX-LISTEN here, VSOCK-LISTEN in a VM), the relay to the agent's socket
 * is the production one.
 */
let dir: string;
let socat: string;
const relays: ChildProcess[] = [];
const sockets: Socket[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgebox-vsock-port-'));
  socat = (await findExecutable('socat', process.env.PATH ?? '/usr/bin')) ?? '/usr/bin/socat';
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const relay of relays.splice(0)) {
    if (relay.exitCode === null && relay.signalCode === null) {
      const gone = new Promise((r) => relay.once('exit', r));
      relay.kill('SIGKILL');
      await gone;
    }
  }
  await rm(dir, { recursive: true, force: true });
});

/** Connects as the host would, retrying while the relay is not listening yet. */
async function hostConnect(path: string): Promise<Socket> {
  for (;;) {
    const socket = await new Promise<Socket | undefined>((resolve) => {
      const s = connect(path);
      s.once('connect', () => resolve(s));
      s.once('error', () => resolve(undefined));
    });
    if (socket) {
      sockets.push(socket);
      return socket;
    }
    await new Promise((r) => setImmediate(r));
  }
}

function firstData(socket: Socket): Promise<string> {
  return new Promise((resolve) => socket.once('data', (c: Buffer) => resolve(c.toString())));
}

describe('guest end of the vsock channel', () => {
  it('reads the channel from the kernel command line', () => {
    expect(bootChannel('console=ttyS0 edgebox.channel=vsock quiet')).toBe('vsock');
    expect(bootChannel('console=ttyS0 quiet\n')).toBe('serial');
    expect(bootChannel('edgebox.channel=vsock edgebox.channel=serial')).toBe('serial');
    expect(bootChannel('edgebox.channel=vsockish')).toBe('serial');
  });

  it('relays the first host connection to the agent, behind a 0600 socket, and only that one', async () => {
    const agentSocket = join(dir, 'edgebox', 'agent.sock');
    const listenPath = join(dir, 'vsock-standin.sock');
    const opening = openVsockPort({
      socketPath: agentSocket,
      port: 1024,
      socatPath: socat,
      listenAddress: `UNIX-LISTEN:${listenPath},fork`,
    });
    const host = await hostConnect(listenPath);
    const port = await opening;
    relays.push(port.relay);
    expect((await stat(agentSocket)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'edgebox'))).mode & 0o777).toBe(0o700);

    // Both directions, through socat.
    const atHost = firstData(host);
    port.output.write('ready');
    expect(await atHost).toBe('ready');
    const atAgent = new Promise<string>((resolve) =>
      port.input.once('data', (c: Buffer) => resolve(c.toString())),
    );
    host.write('request');
    expect(await atAgent).toBe('request');

    // A second connection reaches no one: the agent listens no more.
    const intruder = await hostConnect(listenPath);
    await new Promise((resolve) => intruder.once('close', resolve).resume());

    // The host going away ends the agent's input, which is how the agent knows to power off.
    const ended = new Promise((resolve) => port.input.once('end', resolve));
    host.end();
    await ended;
  });

  it('fails clearly when the relay cannot listen', async () => {
    const opening = openVsockPort({
      socketPath: join(dir, 'agent.sock'),
      port: 1024,
      socatPath: socat,
      listenAddress: `UNIX-LISTEN:${join(dir, 'missing-dir', 'x.sock')}`,
    });
    await expect(opening).rejects.toThrow(
      /the vsock relay \(socat UNIX-LISTEN:.*\) exited \(code 1\) before the host connected/,
    );
    await expect(
      openVsockPort({ socketPath: join(dir, 'b.sock'), port: 1024, socatPath: join(dir, 'nope') }),
    ).rejects.toThrow(/cannot start the vsock relay .*nope: spawn .* ENOENT/);
  });
});
