import type { Socket } from 'node:net';
import {
  MAX_SIMPLE_HEAD_BYTES,
  parseSimpleRequestHead,
  requestHeadEnd,
  type SimpleRequestHead,
} from './request-head.ts';

/** How a request the fast lane took ended, for its connection. */
export type LaneResult =
  /** Answered; the connection carries the next request. */
  | 'keep'
  /** Answered; the connection must close (the client asked, or the answer had no length). */
  | 'close'
  /** Not answered and nothing written: Node's server takes the connection, this request first. */
  | 'hand-off'
  /** The connection is already gone (the client left, or the answer broke). */
  | 'gone';

export interface FastLaneDeps {
  /**
   * A parsed request: a promise of how it ended when the lane may forward it,
   * or undefined when the slow path must answer it (the connection is handed over).
   */
  serve(client: Socket, head: SimpleRequestHead): Promise<LaneResult> | undefined;
  /** Gives the connection to Node's HTTP server, its unread bytes put back first. */
  handOff(socket: Socket): void;
  /** A connection waiting for a request's head this long is closed (Node's keepAliveTimeout). */
  idleTimeoutMs: number;
}

/**
 * The hub's plain listener reads each connection's request heads itself
 * first. While they are plain object and list reads it can forward
 * (HubServer decides), it answers them on the connection; at the first
 * other request (a watch, a write, an upgrade, a head it does not fully
 * understand, the node offline) it hands the connection to Node's HTTP
 * server for good, that request's bytes first, and everything goes on
 * exactly as if Node had read the connection from the start.
 */
export class FastLane {
  readonly #deps: FastLaneDeps;
  readonly #connections = new Set<LaneConnection>();
  #busy = 0;
  #closing = false;
  #idleWaiters: Array<() => void> = [];

  constructor(deps: FastLaneDeps) {
    this.#deps = deps;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Requests being answered now. */
  busy(): number {
    return this.#busy;
  }

  accept(socket: Socket): void {
    const conn = new LaneConnection(socket, this.#deps, this);
    this.#connections.add(conn);
  }

  /** Resolves once no request is being answered. */
  idle(): Promise<void> {
    if (this.#busy === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Shutdown: idle connections close now, busy ones after their answer. */
  closeIdle(): void {
    this.#closing = true;
    for (const conn of this.#connections) if (!conn.busy) conn.destroy();
  }

  destroyAll(): void {
    this.#closing = true;
    for (const conn of this.#connections) conn.destroy();
  }

  /** LaneConnection's bookkeeping. */
  started(): void {
    this.#busy += 1;
  }

  finished(): void {
    this.#busy -= 1;
    if (this.#busy === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  forget(conn: LaneConnection): void {
    this.#connections.delete(conn);
  }
}

/** Past this many unread bytes behind a request in flight, stop reading (pipelining). */
const MAX_BUFFERED_BYTES = 64 * 1024;

class LaneConnection {
  busy = false;
  readonly #socket: Socket;
  readonly #deps: FastLaneDeps;
  readonly #lane: FastLane;
  /** Bytes read and not yet consumed as a request. */
  #buffered: Buffer | undefined;
  #ended = false;
  /** This side is closing: nothing more is read as a request. */
  #done = false;

  constructor(socket: Socket, deps: FastLaneDeps, lane: FastLane) {
    this.#socket = socket;
    this.#deps = deps;
    this.#lane = lane;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', ignoreError); // 'close' follows
    socket.on('timeout', this.#onTimeout);
    socket.once('close', this.#onClose);
    socket.setTimeout(deps.idleTimeoutMs);
  }

  destroy(): void {
    this.#socket.destroy();
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#done) return;
    this.#buffered = this.#buffered === undefined ? chunk : Buffer.concat([this.#buffered, chunk]);
    if (this.busy) {
      if (this.#buffered.length > MAX_BUFFERED_BYTES) this.#socket.pause();
      return;
    }
    this.#next();
  };

  readonly #onEnd = (): void => {
    this.#ended = true;
    if (!this.busy) this.#next();
  };

  /**
   * Idle too long. The timeout stays armed while a request is answered (arming
   * and disarming it per request costs two timers each time): an answer that
   * is slow to come is not idleness, and any byte either way re-arms it.
   */
  readonly #onTimeout = (): void => {
    if (!this.busy) this.#socket.destroy();
  };

  readonly #onClose = (): void => {
    this.#lane.forget(this);
  };

  /** Takes the next buffered request, if a whole head is there. */
  #next(): void {
    const buf = this.#buffered;
    if (buf === undefined) {
      if (this.#ended) this.#socket.end();
      return;
    }
    const end = requestHeadEnd(buf);
    if (end === -1) {
      if (buf.length > MAX_SIMPLE_HEAD_BYTES) this.#handOff();
      else if (this.#ended) this.#socket.end();
      return;
    }
    const head = parseSimpleRequestHead(buf, end);
    const pending = head === undefined ? undefined : this.#deps.serve(this.#socket, head);
    if (pending === undefined) {
      this.#handOff();
      return;
    }
    const request = buf.subarray(0, end);
    this.#buffered = end === buf.length ? undefined : buf.subarray(end);
    this.busy = true;
    this.#lane.started();
    pending.then(
      (result) => this.#finished(result, request),
      () => this.#finished('gone', request),
    );
  }

  #finished(result: LaneResult, request: Buffer): void {
    this.busy = false;
    this.#lane.finished();
    switch (result) {
      case 'gone':
        this.#done = true;
        this.#socket.destroy();
        return;
      case 'close':
        // Anything pipelined behind a `Connection: close` request is not answered (RFC 9112 9.6).
        this.#done = true;
        this.#socket.end();
        return;
      case 'hand-off':
        this.#buffered =
          this.#buffered === undefined ? request : Buffer.concat([request, this.#buffered]);
        this.#handOff();
        return;
      case 'keep':
        if (this.#lane.closing) {
          this.#done = true;
          this.#socket.end();
          return;
        }
        this.#socket.resume();
        this.#next();
    }
  }

  #handOff(): void {
    const socket = this.#socket;
    if (this.#ended) {
      // A stream that has ended cannot take its bytes back; a client that
      // half-closed behind a request the lane could not answer loses it.
      socket.destroy();
      return;
    }
    socket.removeListener('data', this.#onData);
    socket.removeListener('end', this.#onEnd);
    socket.removeListener('error', ignoreError);
    socket.removeListener('timeout', this.#onTimeout);
    socket.removeListener('close', this.#onClose);
    socket.setTimeout(0); // Node's server sets its own
    this.#lane.forget(this);
    socket.pause();
    if (this.#buffered !== undefined) socket.unshift(this.#buffered);
    this.#buffered = undefined;
    this.#deps.handOff(socket);
    socket.resume();
  }
}

function ignoreError(): void {}
