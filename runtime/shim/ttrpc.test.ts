import { connect, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { codecFor } from './codec.ts';
import { FrameReader, MAX_FRAME_PAYLOAD_BYTES, MessageType, encodeFrame } from './ttrpc-frame.ts';
import { Code, TtrpcClient, TtrpcError, TtrpcServer, type MethodHandler } from './ttrpc.ts';

const startRequest = codecFor('containerd.task.v2.StartRequest');
const startResponse = codecFor('containerd.task.v2.StartResponse');

let dir: string;
let server: TtrpcServer;
let logged: string[];
const socketPath = (): string => join(dir, 'shim.sock');

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgebox-ttrpc-'));
  logged = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logged.push(chunk.toString());
      done();
    },
  });
  const methods = new Map<string, MethodHandler>([
    [
      'Start',
      (payload) => {
        const req = startRequest.decode(payload);
        if (req.id === 'missing') throw new TtrpcError(Code.notFound, 'task missing not found');
        return Promise.resolve(startResponse.encode({ pid: (req.id as string).length }));
      },
    ],
  ]);
  server = new TtrpcServer(
    new Map([['containerd.task.v2.Task', methods]]),
    createLogger({ name: 'test', destination: sink }),
  );
  await server.listen(socketPath());
});

afterEach(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

function rawConnection(): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve) => {
    const socket = connect(socketPath(), () =>
      resolve({ socket, closed: new Promise((r) => socket.on('close', () => r())) }),
    );
    socket.on('error', () => undefined);
  });
}

async function answersStart(): Promise<void> {
  const client = await TtrpcClient.connect(socketPath());
  const reply = await client.call(
    'containerd.task.v2.Task',
    'Start',
    startRequest.encode({ id: 'abcd' }),
  );
  expect(startResponse.decode(reply).pid).toBe(4);
  client.close();
}

describe('ttrpc framing', () => {
  it('reassembles frames split anywhere and several in one chunk', () => {
    const a = encodeFrame({ streamId: 1, type: 1, flags: 0, payload: Buffer.from('hello') });
    const b = encodeFrame({ streamId: 3, type: 1, flags: 0, payload: Buffer.alloc(0) });
    const all = Buffer.concat([a, b]);
    const reader = new FrameReader();
    const frames = [...reader.push(all.subarray(0, 3)), ...reader.push(all.subarray(3, 12))];
    frames.push(...reader.push(all.subarray(12)));
    expect(frames.map((f) => [f.streamId, f.payload.toString()])).toEqual([
      [1, 'hello'],
      [3, ''],
    ]);
    expect(reader.pendingBytes).toBe(0);
  });

  it('refuses to encode a message over 4 MiB', () => {
    expect(() =>
      encodeFrame({
        streamId: 1,
        type: 1,
        flags: 0,
        payload: Buffer.alloc(MAX_FRAME_PAYLOAD_BYTES + 1),
      }),
    ).toThrow(/exceeds/);
  });
});

describe('ttrpc server', () => {
  it('answers a call and returns errors as ttrpc statuses', async () => {
    await answersStart();
    const client = await TtrpcClient.connect(socketPath());
    await expect(
      client.call('containerd.task.v2.Task', 'Start', startRequest.encode({ id: 'missing' })),
    ).rejects.toMatchObject({ code: Code.notFound, message: 'task missing not found' });
    await expect(
      client.call('containerd.task.v2.Task', 'Checkpoint', Buffer.alloc(0)),
    ).rejects.toMatchObject({ code: Code.unimplemented });
    client.close();
  });

  it.each([
    [
      'an oversized frame',
      () => {
        const header = Buffer.alloc(10);
        header.writeUInt32BE(MAX_FRAME_PAYLOAD_BYTES + 1, 0);
        header.writeUInt32BE(1, 4);
        header.writeUInt8(MessageType.request, 8);
        return header;
      },
      /over the 4194304-byte limit/,
    ],
    [
      'data for a stream that is not open',
      () =>
        encodeFrame({ streamId: 7, type: MessageType.data, flags: 0, payload: Buffer.from('x') }),
      /data frame for stream 7, which is not open/,
    ],
    [
      'an even stream id',
      () =>
        encodeFrame({ streamId: 2, type: MessageType.request, flags: 0, payload: Buffer.alloc(0) }),
      /even stream 2/,
    ],
    [
      'an unknown message type',
      () => encodeFrame({ streamId: 1, type: 9, flags: 0, payload: Buffer.alloc(0) }),
      /unknown ttrpc message type 9/,
    ],
    [
      'a payload that is not a Request',
      () =>
        encodeFrame({
          streamId: 1,
          type: MessageType.request,
          flags: 0,
          payload: Buffer.from([0x0a, 0x7f]),
        }),
      /undecodable request on stream 1/,
    ],
  ])('closes the connection on %s, logs why, and keeps serving', async (_name, frame, reason) => {
    const { socket, closed } = await rawConnection();
    socket.write(frame());
    await closed;
    expect(logged.join('')).toMatch(reason);
    await answersStart();
  });

  it('logs a connection that ends inside a frame', async () => {
    const { socket, closed } = await rawConnection();
    const frame = encodeFrame({ streamId: 1, type: 1, flags: 0, payload: Buffer.alloc(20) });
    socket.end(frame.subarray(0, 15));
    await closed;
    expect(logged.join('')).toMatch(/ended inside a frame \(15 bytes\)/);
    await answersStart();
  });
});
