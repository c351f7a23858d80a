import { connect, createServer, type AddressInfo, type OnReadOpts, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../../test/hub/hub-harness.ts';
import type { Upstream } from '../upstream/upstream.ts';
import { ConnectionPool } from './connection-pool.ts';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A TCP server that remembers its connections, and an Upstream whose connect() reaches it. */
async function server() {
  const accepted: Socket[] = [];
  const srv = createServer((s) => {
    s.on('error', () => {});
    accepted.push(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of accepted) s.destroy();
        srv.close(() => r());
      }),
  );
  const upstream = {
    name: `http://127.0.0.1:${port}`,
    url: new URL(`http://127.0.0.1:${port}`),
    tlsGeneration: 0,
    connect: (_ownToken: boolean, onread: OnReadOpts) =>
      connect({ port, host: '127.0.0.1', onread }),
  } as unknown as Upstream & { tlsGeneration: number };
  return { accepted, upstream };
}

describe('ConnectionPool', () => {
  it('reuses a kept connection, per upstream and per kind (own token or not)', async () => {
    const { accepted, upstream } = await server();
    const pool = new ConnectionPool();
    cleanups.push(() => pool.close());
    const first = pool.take(upstream, false);
    expect(first?.reused).toBe(false);
    await until(() => accepted.length === 1, 'the connection');
    if (first === undefined) throw new Error('no connection');
    pool.keep(first);
    const again = pool.take(upstream, false);
    expect(again?.socket).toBe(first.socket);
    expect(again?.reused).toBe(true);
    // A request carrying its own token never gets a connection made for the hub's credentials.
    const own = pool.take(upstream, true);
    expect(own?.socket).not.toBe(first.socket);
  });

  it('drops a kept connection the server closed, or that received bytes while kept', async () => {
    const { accepted, upstream } = await server();
    const pool = new ConnectionPool();
    cleanups.push(() => pool.close());
    const a = pool.take(upstream, false);
    const b = pool.take(upstream, false);
    if (a === undefined || b === undefined) throw new Error('no connection');
    await until(() => accepted.length === 2, 'both connections');
    pool.keep(a);
    pool.keep(b);
    const closed = [a, b].map((c) => new Promise<void>((r) => c.socket.once('close', () => r())));
    accepted[0]?.end(); // the server closes one
    accepted[1]?.write('HTTP/1.1 408 Request Timeout\r\n\r\n'); // and talks on the other
    await Promise.all(closed);
    const fresh = pool.take(upstream, false);
    expect([a.socket, b.socket]).not.toContain(fresh?.socket);
    expect(fresh?.reused).toBe(false);
  });

  it('does not reuse a connection made with TLS material since rotated', async () => {
    const { upstream } = await server();
    const pool = new ConnectionPool();
    cleanups.push(() => pool.close());
    const old = pool.take(upstream, false);
    if (old === undefined) throw new Error('no connection');
    pool.keep(old);
    upstream.tlsGeneration = 1;
    const next = pool.take(upstream, false);
    expect(next?.socket).not.toBe(old.socket);
    expect(old.socket.destroyed).toBe(true);
  });

  it('closes what it keeps on close() and keeps nothing after', async () => {
    const { upstream } = await server();
    const pool = new ConnectionPool();
    const kept = pool.take(upstream, false);
    const late = pool.take(upstream, false);
    if (kept === undefined || late === undefined) throw new Error('no connection');
    pool.keep(kept);
    pool.close();
    expect(kept.socket.destroyed).toBe(true);
    pool.keep(late);
    expect(late.socket.destroyed).toBe(true);
  });

  it('has nothing to give while the upstream has no credentials yet', () => {
    const pool = new ConnectionPool();
    const waiting = { tlsGeneration: 0, connect: () => undefined } as unknown as Upstream;
    expect(pool.take(waiting, false)).toBeUndefined();
  });
});
