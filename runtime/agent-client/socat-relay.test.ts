import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProcessTracker } from '../process/tracker.ts';
import { FrameDecoder, encodeFrame } from '../protocol/framing.ts';
import { AgentChannel, type AgentChannelError } from './channel.ts';
import { findExecutable } from './channel-select.ts';
import { connectThroughSocat, socatRelayArgs, vsockConnectAddress } from './socat-relay.ts';

/**
 * The host end of the vsock channel with a REAL socat: only its guest address
 * differs (UNIX-CONNECT to a socket this test serves instead of VSOCK-CONNECT,
 * which needs a VM on a vhost-vsock host).
 */
let dir: string;
let socket: string;
let processes: ProcessTracker;
let socatPath: string;
const servers: Server[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgebox-socat-relay-'));
  socket = join(dir, 'agent.sock');
  processes = new ProcessTracker(dir);
  const found = await findExecutable('socat', process.env.PATH ?? '/usr/bin');
  if (!found) throw new Error('socat is needed for these tests (Debian package socat)');
  socatPath = found;
});

afterEach(async () => {
  await processes.stopAll();
  for (const server of servers.splice(0)) await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

/** socat processes that are children of this test process (any thread). */
async function socatChildren(): Promise<number[]> {
  const pids: number[] = [];
  for (const task of await readdir(`/proc/${process.pid}/task`)) {
    const text = await readFile(`/proc/${process.pid}/task/${task}/children`, 'utf8').catch(
      () => '',
    );
    for (const pid of text.trim().split(/\s+/).filter(Boolean).map(Number)) {
      const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
      if (comm.trim() === 'socat') pids.push(pid);
    }
  }
  return pids;
}

/** A fake guest agent on the unix socket: says ready, answers startContainer with pid 42. */
function listen(onConnection?: (guest: Socket) => void): Promise<Server> {
  const server = createServer((guest) => {
    guest.write(
      encodeFrame(
        Buffer.from(
          JSON.stringify({
            v: 1,
            kind: 'ready',
            agentVersion: 'test',
            initUptimeSeconds: 1,
            readyUptimeSeconds: 2,
            agentRssBytes: 1,
            agentAnonBytes: 1,
          }),
        ),
      ),
    );
    const decoder = new FrameDecoder();
    guest.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) {
        const request = JSON.parse(frame.toString()) as { id: number };
        guest.write(
          encodeFrame(
            Buffer.from(
              JSON.stringify({
                v: 1,
                kind: 'response',
                id: request.id,
                ok: true,
                result: { pid: 42 },
              }),
            ),
          ),
        );
      }
    });
    guest.on('error', () => undefined);
    onConnection?.(guest);
  });
  servers.push(server);
  return new Promise((resolve) => server.listen(socket, () => resolve(server)));
}

function closed(channel: AgentChannel): Promise<AgentChannelError> {
  return new Promise((resolve) => channel.onClose(resolve));
}

describe('vsock relay through socat (host end)', () => {
  it('spells the vsock address and socat options', () => {
    expect(vsockConnectAddress(7, 1024)).toBe('VSOCK-CONNECT:7:1024');
    expect(socatRelayArgs('VSOCK-CONNECT:7:1024')).toEqual([
      '-b',
      '65536',
      'STDIO',
      'VSOCK-CONNECT:7:1024',
    ]);
  });

  /** A relay to the listening fake agent, its channel ready, and a promise of its close. */
  async function readyChannel() {
    const stream = await connectThroughSocat({
      socatPath,
      address: `UNIX-CONNECT:${socket}`,
      processes,
      timeoutMs: 30_000,
    });
    const channel = new AgentChannel(stream);
    await channel.waitReady(10_000);
    return { stream, channel, ended: closed(channel) };
  }

  it('retries until the agent listens, then carries frames both ways; nothing is left behind', async () => {
    const failures: string[] = [];
    let listening: Promise<Server> | undefined;
    const stream = await connectThroughSocat({
      socatPath,
      address: `UNIX-CONNECT:${socket}`,
      processes,
      timeoutMs: 30_000,
      retryDelayMs: { first: 5, max: 20 },
      onAttemptFailed: (_n, reason) => {
        failures.push(reason);
        // The agent comes up only after the host has been turned away twice.
        if (failures.length === 2) listening = listen();
      },
    });
    expect(listening).toBeDefined();
    expect(failures.length).toBeGreaterThanOrEqual(2);
    expect(failures[0]).toMatch(/socat exited with code 1: .*No such file or directory/);
    // Failed attempts were reaped and forgotten: one relay is tracked, the connected one.
    expect(processes.processes.map((p) => p.name)).toEqual(['vsock-relay']);
    expect(await socatChildren()).toEqual([stream.pid]);

    const channel = new AgentChannel(stream);
    expect((await channel.waitReady(10_000)).agentVersion).toBe('test');
    await expect(channel.request({ op: 'startContainer', containerId: 'a' })).resolves.toEqual({
      pid: 42,
    });
    const ended = closed(channel);
    channel.close();
    expect((await ended).message).toMatch(/closed by the host/);
    await processes.processes[0]?.exited;
    expect(await socatChildren()).toEqual([]);
  });

  it('closes the channel with the reason when the guest end goes away', async () => {
    let guest: Socket | undefined;
    await listen((g) => (guest = g));
    const { channel, ended } = await readyChannel();
    guest?.destroy();
    const error = await ended;
    expect(error.reason).toBe('closed');
    expect(error.message).toMatch(
      /vsock relay \(socat UNIX-CONNECT:.*\) ended, the guest end closed the connection: socat exited with code 0/,
    );
    expect(await socatChildren()).toEqual([]);
    await expect(channel.request({ op: 'startContainer', containerId: 'a' })).rejects.toBe(error);
  });

  it('closes the channel when the relay itself dies', async () => {
    await listen();
    const { stream, ended } = await readyChannel();
    process.kill(stream.pid, 'SIGKILL');
    expect((await ended).message).toMatch(/the relay failed: socat was killed by SIGKILL/);
    expect(await socatChildren()).toEqual([]);
  });

  it('gives up at the deadline, or when aborted, with no socat left', async () => {
    await expect(
      connectThroughSocat({
        socatPath,
        address: `UNIX-CONNECT:${socket}`,
        processes,
        timeoutMs: 200,
        retryDelayMs: { first: 5, max: 20 },
      }),
    ).rejects.toThrow(
      /did not accept a connection through socat UNIX-CONNECT:.* within 200 ms \(\d+ attempts, last: socat (exited with code 1|was killed by SIGTERM)/,
    );
    expect(await socatChildren()).toEqual([]);

    const abort = new AbortController();
    const attempts = connectThroughSocat({
      socatPath,
      address: `UNIX-CONNECT:${socket}`,
      processes,
      timeoutMs: 30_000,
      signal: abort.signal,
      onAttemptFailed: () => abort.abort(new Error('the VM stopped')),
    });
    await expect(attempts).rejects.toThrow('the VM stopped');
    expect(await socatChildren()).toEqual([]);
    expect(processes.processes).toEqual([]);
  });
});
