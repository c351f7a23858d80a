import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { QmpClient } from './qmp.ts';

let server: Server | undefined;
let dir: string | undefined;
afterEach(async () => {
  server?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** A QMP peer that greets and accepts capabilities, leaves the first `query-status` unanswered and answers later ones. */
async function wedgedQemu(): Promise<{ path: string; late: Promise<Socket> }> {
  dir = await mkdtemp(join(tmpdir(), 'edgebox-qmp-'));
  const path = join(dir, 'qmp.sock');
  let lateSocket: (s: Socket) => void = () => {};
  const late = new Promise<Socket>((resolve) => (lateSocket = resolve));
  let queries = 0;
  server = createServer((socket) => {
    socket.write('{"QMP": {"version": {}, "capabilities": []}}\n');
    socket.setEncoding('utf8').on('data', (text: string) => {
      for (const line of text.split('\n').filter((l) => l !== '')) {
        const { execute, id } = JSON.parse(line) as { execute: string; id: number };
        if (execute === 'qmp_capabilities') socket.write(`{"return": {}, "id": ${id}}\n`);
        // The first query-status is never answered (a wedged QEMU); the test answers it late itself.
        if (execute === 'query-status' && queries++ === 0) lateSocket(socket);
        else if (execute === 'query-status') {
          socket.write(`{"return": {"status": "running"}, "id": ${id}}\n`);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server?.listen(path, resolve));
  return { path, late };
}

describe('QMP client', () => {
  it('fails a command QEMU never answers, with the command named, and ignores a late answer', async () => {
    const { path, late } = await wedgedQemu();
    const qmp = await QmpClient.connect(path, 5_000, () => true);
    try {
      const status = qmp.execute('query-status', undefined, 200);
      const socket = await late;
      await expect(status).rejects.toThrow('QMP query-status got no answer within 200 ms');
      // The answer arrives after all: dropped, and the client still works.
      socket.write('{"return": {"status": "late"}, "id": 2}\n');
      await expect(qmp.execute('query-status', undefined, 5_000)).resolves.toEqual({
        status: 'running',
      });
    } finally {
      qmp.close();
    }
  });

  it('gives up at its deadline on a socket that accepts but never greets, and closes it', async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgebox-qmp-'));
    const path = join(dir, 'qmp.sock');
    const accepted: Socket[] = [];
    server = createServer((socket) => {
      accepted.push(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server?.listen(path, resolve));
    const connecting = QmpClient.connect(path, 300, () => true);
    await expect(connecting).rejects.toThrow(`QMP socket ${path} did not answer within 300 ms`);
    await expect(connecting.catch((e: Error) => String(e.cause))).resolves.toContain(
      'no QMP greeting',
    );
    // The silent connection was not left open.
    await Promise.all(
      accepted.map((s) => (s.closed ? undefined : new Promise((r) => s.once('close', r)))),
    );
  });
});
