import type { Socket } from 'node:net';
import type { Upstream } from '../upstream/upstream.ts';
import { ReadBuffers, type ReadConsumer } from './read-buffers.ts';

/** A connection to one upstream, as the fast lane borrows it. */
export interface PooledConnection {
  socket: Socket;
  upstream: Upstream;
  /** Requests carrying their own token go over connections without the hub's client certificate. */
  ownToken: boolean;
  /** It carried an answer before: the server may have closed it meanwhile. */
  reused: boolean;
  tlsGeneration: number;
  /** When it was kept (performance.now()); undefined while in use. */
  idleSince?: number | undefined;
  /** Where the answer's bytes go while the connection is in use (the socket emits no 'data'). */
  consume?: ReadConsumer | undefined;
}

/** Kept connections per upstream and kind (the hub's certificate or none). */
const MAX_IDLE_PER_KEY = 32;
/** A kept connection unused this long is closed (kube-apiserver itself keeps idle ones ~90 s). */
const IDLE_TIMEOUT_MS = 30_000;

/**
 * Keep-alive connections to kube-apiserver for the fast lane
 * (socket-forwarder.ts), which writes and reads HTTP/1.1 on them itself.
 * What an http.Agent does for the slow path, without a request object per use.
 */
export class ConnectionPool {
  readonly #idle = new Map<Upstream, { hub: PooledConnection[]; own: PooledConnection[] }>();
  readonly #buffers = new ReadBuffers();
  #closed = false;
  /**
   * One sweep for every kept connection rather than a timer each: arming and
   * disarming a socket timeout per request is two timer operations a read.
   */
  #sweeper: NodeJS.Timeout | undefined;

  /**
   * A kept connection, or a new one; undefined while the upstream's
   * credentials are still being resolved.
   */
  take(upstream: Upstream, ownToken: boolean): PooledConnection | undefined {
    const idle = this.#lists(upstream)[ownToken ? 'own' : 'hub'];
    for (let conn = idle.pop(); conn !== undefined; conn = idle.pop()) {
      conn.idleSince = undefined;
      if (conn.tlsGeneration === upstream.tlsGeneration && !conn.socket.destroyed) return conn;
      conn.socket.destroy();
    }
    const tlsGeneration = upstream.tlsGeneration;
    // The socket's reads go to its connection's current consumer (the connection is made after it).
    const reader: { conn?: PooledConnection } = {};
    const socket = upstream.connect(
      ownToken,
      this.#buffers.onread((chunk, done) => {
        const made = reader.conn;
        if (made?.consume !== undefined) return made.consume(chunk, done);
        done();
        // Bytes on a kept connection (a 408 before closing, say) would be
        // read as the next answer: it is closed.
        if (made?.idleSince !== undefined) this.#evict(made);
      }),
    );
    if (socket === undefined) return undefined;
    socket.setNoDelay(true);
    const conn: PooledConnection = { socket, upstream, ownToken, reused: false, tlsGeneration };
    reader.conn = conn;
    // Errors end in 'close', which the forwarder (or the pool, while kept) handles.
    socket.on('error', ignoreError);
    // Listened to for the connection's whole life (not per use): a kept one that closes leaves the pool.
    socket.on('close', () => {
      if (conn.idleSince !== undefined) this.#evict(conn);
    });
    return conn;
  }

  /** The connection's answer ended cleanly: keep it for the next request. */
  keep(conn: PooledConnection): void {
    const idle = this.#lists(conn.upstream)[conn.ownToken ? 'own' : 'hub'];
    if (this.#closed || idle.length >= MAX_IDLE_PER_KEY || conn.socket.destroyed) {
      conn.socket.destroy();
      return;
    }
    conn.reused = true;
    conn.idleSince = performance.now();
    idle.push(conn);
    this.#sweeper ??= setInterval(() => this.#sweep(), IDLE_TIMEOUT_MS / 2).unref();
  }

  #evict(conn: PooledConnection): void {
    conn.idleSince = undefined;
    const idle = this.#lists(conn.upstream)[conn.ownToken ? 'own' : 'hub'];
    const at = idle.indexOf(conn);
    if (at !== -1) idle.splice(at, 1);
    conn.socket.destroy();
  }

  /** Closes connections kept longer than IDLE_TIMEOUT_MS (the newest are at the end). */
  #sweep(): void {
    const now = performance.now();
    let kept = 0;
    for (const lists of this.#idle.values()) {
      for (const idle of [lists.hub, lists.own]) {
        const stale = idle.findIndex((c) => now - (c.idleSince ?? now) < IDLE_TIMEOUT_MS);
        const drop = idle.splice(0, stale === -1 ? idle.length : stale);
        for (const conn of drop) {
          conn.idleSince = undefined;
          conn.socket.destroy();
        }
        kept += idle.length;
      }
    }
    if (kept === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** Shutdown: close every kept connection and keep no more. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const { hub, own } of this.#idle.values()) {
      for (const conn of [...hub.splice(0), ...own.splice(0)]) conn.socket.destroy();
    }
  }

  #lists(upstream: Upstream) {
    let lists = this.#idle.get(upstream);
    if (lists === undefined) {
      lists = { hub: [], own: [] };
      this.#idle.set(upstream, lists);
    }
    return lists;
  }
}

function ignoreError(): void {}
