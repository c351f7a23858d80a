import type { Socket } from 'node:net';
import type { Upstream } from '../upstream/upstream.ts';

/** A connection to one upstream, as the fast lane borrows it. */
export interface PooledConnection {
  socket: Socket;
  upstream: Upstream;
  /** Requests carrying their own token go over connections without the hub's client certificate. */
  ownToken: boolean;
  /** It carried an answer before: the server may have closed it meanwhile. */
  reused: boolean;
  tlsGeneration: number;
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
  #closed = false;

  /**
   * A kept connection, or a new one; undefined while the upstream's
   * credentials are still being resolved.
   */
  take(upstream: Upstream, ownToken: boolean): PooledConnection | undefined {
    const idle = this.#lists(upstream)[ownToken ? 'own' : 'hub'];
    for (let conn = idle.pop(); conn !== undefined; conn = idle.pop()) {
      conn.socket.setTimeout(0);
      conn.socket.removeListener('close', onIdleClose);
      conn.socket.removeListener('timeout', onIdleTimeout);
      conn.socket.removeListener('data', onIdleData);
      if (conn.tlsGeneration === upstream.tlsGeneration && !conn.socket.destroyed) return conn;
      conn.socket.destroy();
    }
    const tlsGeneration = upstream.tlsGeneration;
    const socket = upstream.connect(ownToken);
    if (socket === undefined) return undefined;
    socket.setNoDelay(true);
    // Errors end in 'close', which the forwarder (or the pool, while idle) handles.
    socket.on('error', ignoreError);
    return { socket, upstream, ownToken, reused: false, tlsGeneration };
  }

  /** The connection's answer ended cleanly: keep it for the next request. */
  keep(conn: PooledConnection): void {
    const idle = this.#lists(conn.upstream)[conn.ownToken ? 'own' : 'hub'];
    if (this.#closed || idle.length >= MAX_IDLE_PER_KEY || conn.socket.destroyed) {
      conn.socket.destroy();
      return;
    }
    conn.reused = true;
    const socket = conn.socket as Socket & { [POOL_ENTRY]?: () => void };
    socket[POOL_ENTRY] = () => {
      const at = idle.indexOf(conn);
      if (at !== -1) idle.splice(at, 1);
      socket.destroy();
    };
    socket.setTimeout(IDLE_TIMEOUT_MS);
    socket.once('close', onIdleClose);
    socket.once('timeout', onIdleTimeout);
    // Bytes on an idle connection (a 408 before closing, say) would be read as the next answer.
    socket.once('data', onIdleData);
    idle.push(conn);
  }

  /** Shutdown: close every kept connection and keep no more. */
  close(): void {
    this.#closed = true;
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

/** How a kept connection leaves the pool when its server closes it or it idles out. */
const POOL_ENTRY = Symbol('edgebox pool entry');

function onIdleClose(this: Socket & { [POOL_ENTRY]?: () => void }): void {
  this[POOL_ENTRY]?.();
}

function onIdleData(this: Socket & { [POOL_ENTRY]?: () => void }): void {
  this[POOL_ENTRY]?.();
}

function ignoreError(): void {}

function onIdleTimeout(this: Socket & { [POOL_ENTRY]?: () => void }): void {
  this[POOL_ENTRY]?.();
}
