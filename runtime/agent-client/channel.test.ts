import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FrameDecoder, encodeFrame } from '../protocol/framing.ts';
import { AgentChannel, AgentChannelError } from './channel.ts';

/**
 * The host end of the agent channel against a fake guest on a real unix
 * socket pair: no VM, the guest's bytes are whatever the test writes.
 */
let dir: string;
let server: Server;
let guest: Socket;
let host: Socket;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgebox-channel-'));
  const path = join(dir, 'agent.sock');
  server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  host = connect(path);
  guest = await accepted;
});

afterEach(async () => {
  guest.destroy();
  host.destroy();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

function send(message: unknown): void {
  guest.write(encodeFrame(Buffer.from(JSON.stringify(message))));
}

function closed(channel: AgentChannel): Promise<AgentChannelError> {
  return new Promise((resolve) => channel.onClose(resolve));
}

/** Reads the host's requests as the guest sees them. */
function guestRequests(onRequest: (request: { id: number; op: string }) => void): void {
  const decoder = new FrameDecoder();
  guest.on('data', (chunk: Buffer) => {
    for (const frame of decoder.push(chunk)) onRequest(JSON.parse(frame.toString()));
  });
}

describe('agent channel (host side) against a hostile guest', () => {
  it('answers requests from a well-behaved guest and validates results', async () => {
    const channel = new AgentChannel(host);
    guestRequests((request) =>
      send({ v: 1, kind: 'response', id: request.id, ok: true, result: { pid: 42 } }),
    );
    await expect(channel.request({ op: 'startContainer', containerId: 'a' })).resolves.toEqual({
      pid: 42,
    });
  });

  it('cuts off a guest that announces an oversized frame, before reading it', async () => {
    const channel = new AgentChannel(host, { maxFrameBytes: 1024 });
    const pending = channel.request({ op: 'startContainer', containerId: 'a' });
    const header = Buffer.alloc(4);
    header.writeUInt32BE(512 * 1024 * 1024, 0);
    guest.write(header);
    guest.write(Buffer.alloc(64 * 1024, 0x41));
    const err = await closed(channel);
    expect(err.reason).toBe('oversized');
    await expect(pending).rejects.toThrow(/oversized/);
    expect(host.destroyed).toBe(true);
  });

  it('cuts off a guest that sends invalid JSON or messages outside the schema', async () => {
    const notJson = new AgentChannel(host);
    guest.write(encodeFrame(Buffer.from('{not json')));
    expect((await closed(notJson)).reason).toBe('invalid');
  });

  it('cuts off a guest whose message does not match the schema', async () => {
    const channel = new AgentChannel(host);
    send({ v: 1, kind: 'exited', containerId: '../../etc/passwd', exitCode: 0 });
    const err = await closed(channel);
    expect(err.reason).toBe('invalid');
    expect(err.message).toMatch(/containerId/);
  });

  it('cuts off a guest that answers requests never made', async () => {
    const channel = new AgentChannel(host);
    send({ v: 1, kind: 'response', id: 999, ok: true });
    expect((await closed(channel)).reason).toBe('protocol');
  });

  it('cuts off a guest that sends messages without end', async () => {
    let now = 0;
    const channel = new AgentChannel(host, {
      maxMessagesPerSecond: 100,
      messageBurst: 200,
      now: () => now,
    });
    const done = closed(channel);
    const log = encodeFrame(
      Buffer.from(JSON.stringify({ v: 1, kind: 'log', level: 'info', message: 'x' })),
    );
    let events = 0;
    channel.onEvent(() => events++);
    // An endless stream: keep writing until the host hangs up.
    const flood = (): void => {
      while (!guest.destroyed && guest.write(Buffer.concat(Array(50).fill(log)))) now += 1;
    };
    guest.on('drain', flood);
    guest.on('error', () => undefined);
    flood();
    const err = await done;
    expect(err.reason).toBe('rate');
    expect(events).toBeLessThan(400);
  });

  it('cuts off a guest that stays under the message rate with large messages', async () => {
    let now = 0;
    const channel = new AgentChannel(host, {
      maxMessagesPerSecond: 100,
      messageBurst: 200,
      maxBytesPerSecond: 1024 * 1024,
      byteBurst: 2 * 1024 * 1024,
      now: () => now,
    });
    const done = closed(channel);
    // 50 messages a second, each near 256 KiB: 12.5 MiB/s in a fifth of the message budget.
    const big = encodeFrame(
      Buffer.from(
        JSON.stringify({
          v: 1,
          kind: 'output',
          containerId: 'c',
          stream: 'stdout',
          data: 'eA=='.repeat(64 * 1024),
        }),
      ),
    );
    let events = 0;
    channel.onEvent(() => events++);
    const flood = (): void => {
      while (!guest.destroyed && guest.write(big)) now += 20;
    };
    guest.on('drain', flood);
    guest.on('error', () => undefined);
    flood();
    const err = await done;
    expect(err.reason).toBe('rate');
    expect(err.message).toMatch(/bytes\/s/);
    // What got through is the burst plus what the sustained rate allowed, not the flood.
    expect(events).toBeLessThan(20);
  });

  it('fails pending requests and waiters when the guest goes away', async () => {
    const channel = new AgentChannel(host);
    const ready = channel.waitReady(60_000);
    const pending = channel.request({ op: 'stats', containerId: 'a' });
    guest.destroy();
    await expect(pending).rejects.toBeInstanceOf(AgentChannelError);
    await expect(ready).rejects.toBeInstanceOf(AgentChannelError);
    expect(channel.failure?.reason).toBe('closed');
  });

  it('rejects a result that does not match its request', async () => {
    const channel = new AgentChannel(host);
    guestRequests((request) =>
      send({ v: 1, kind: 'response', id: request.id, ok: true, result: { cpu: 'lots' } }),
    );
    await expect(channel.request({ op: 'stats', containerId: 'a' })).rejects.toThrow(
      /invalid stats result/,
    );
    expect(channel.failure?.reason).toBe('invalid');
  });

  it('lets stdin wait for a process that reads late, while other requests still time out', async () => {
    const channel = new AgentChannel(host, { requestTimeoutMs: 1 });
    const stdinId = new Promise<number>((resolve) =>
      guestRequests((request) => {
        if (request.op === 'stdin') resolve(request.id);
      }),
    );
    const stdin = channel.request(
      { op: 'stdin', containerId: 'a', data: Buffer.from('hi\n').toString('base64') },
      { timeout: false },
    );
    await expect(channel.request({ op: 'stats', containerId: 'a' })).rejects.toThrow(
      /did not answer stats within 1 ms/,
    );
    const id = await stdinId;
    send({ v: 1, kind: 'response', id, ok: true });
    await expect(stdin).resolves.toBeUndefined();
  });
});
