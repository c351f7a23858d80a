import type { Socket } from 'node:net';
import type { Logger } from '../../src/log.ts';
import type { HubRequest } from '../cache/cache-manager.ts';
import { SOURCE_HEADER, UPSTREAM_SOURCE } from '../response-source.ts';
import type { SimpleRequestHead } from '../server/request-head.ts';
import type { Upstream } from '../upstream/upstream.ts';
import { ConnectionPool, type PooledConnection } from './connection-pool.ts';
import {
  FramingError,
  parseResponseHead,
  type BodyFramer,
  type ResponseHead,
} from './response-framing.ts';
import { describeError } from './describe-error.ts';
import { GuardedRecorder, type RecorderFactory } from './guarded-recorder.ts';
import { HOP_BY_HOP_REQUEST_HEADERS } from './hop-by-hop.ts';
import type { UpstreamReporter } from './remote-proxy.ts';

/** One object or list read the fast lane forwards (server/fast-lane.ts). */
export interface SocketRead {
  client: Socket;
  head: SimpleRequestHead;
  hubReq: HubRequest;
  upstream: Upstream;
  /** Set when the answer is to be recorded: upstream is asked for JSON, uncompressed. */
  recorderFor?: RecorderFactory | undefined;
  /** Close the client's connection after this answer. */
  close: boolean;
}

export type SocketReadOutcome =
  /** Relayed whole. `closeClient`: the answer had no length, so only closing ends it. */
  | { kind: 'answered'; statusCode: number; closeClient: boolean }
  /**
   * Nothing was written to the client: the slow path (Node's server) takes
   * the request. `unreachable`: no connection to the server could be made
   * (refused, or timed out: a black-holed link). That is reported to the
   * health checker here, and the slow path need not wait for it again.
   */
  | { kind: 'not-sent'; error: string; unreachable: boolean }
  /** The answer broke after it began; the client's connection was destroyed. */
  | { kind: 'broken'; statusCode: number; error: string }
  | { kind: 'client-gone' };

type Exchange = SocketReadOutcome | { kind: 'stale' };

/** How much of an answer may wait for a slow client before upstream is paused. */
const CLIENT_BUFFER_BYTES = 1024 * 1024;

/** Not forwarded: the connection's own headers, and a zero length (a GET has no body). */
const HOP_BY_HOP_REQUEST = new Set([...HOP_BY_HOP_REQUEST_HEADERS, 'content-length']);
/** Response headers of upstream's connection; the body's own framing is relayed as it came. */
const HOP_BY_HOP_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  SOURCE_HEADER.toLowerCase(),
]);

export interface SocketForwarderOptions {
  health: UpstreamReporter;
  connectTimeoutMs: number;
  log: Logger;
  /** Tracks a recorded answer's commit (RemoteProxy.drain waits for them). */
  track(commit: Promise<void>): void;
}

/**
 * The fast lane's data path: writes a read's request head on a kept
 * connection to kube-apiserver and relays the answer's bytes as they come,
 * its head rewritten (hop-by-hop headers out, `X-Edgebox-Source` in), its
 * body as framed (so nothing is re-chunked or copied), teeing the de-chunked
 * body into the cache's recorder. It costs about a quarter of the CPU of
 * Node's HTTP server and client, which is what proxying a read is otherwise.
 *
 * Reads only (GET, no body): a kept connection the server closed meanwhile
 * is retried once on a new one; any other failure before the first byte of
 * the answer hands the request back (`not-sent`), and the slow path fails
 * over, waits or answers from the cache as it does for every request.
 */
export class SocketForwarder {
  readonly #opts: SocketForwarderOptions;
  readonly #pool = new ConnectionPool();
  /** Exchanges in flight, by upstream name: upstreamDown() ends them. */
  readonly #open = new Map<() => void, string>();

  constructor(opts: SocketForwarderOptions) {
    this.#opts = opts;
  }

  async forward(r: SocketRead): Promise<SocketReadOutcome> {
    const ownToken = r.head.authorization !== undefined;
    let authorization: string | undefined;
    try {
      authorization = ownToken ? undefined : await r.upstream.authorization();
    } catch (err) {
      return {
        kind: 'not-sent',
        error: `no upstream credentials: ${(err as Error).message}`,
        unreachable: false,
      };
    }
    if (authorization !== undefined && /[\r\n]/.test(authorization)) {
      return {
        kind: 'not-sent',
        error: 'the hub credentials are not a valid header value',
        unreachable: false,
      };
    }
    if (r.client.destroyed) return { kind: 'client-gone' };
    const request = upstreamRequestHead(r, authorization);
    for (;;) {
      const conn = this.#pool.take(r.upstream, ownToken);
      if (conn === undefined) {
        return {
          kind: 'not-sent',
          error: 'the upstream credentials are not resolved yet',
          unreachable: false,
        };
      }
      const outcome = await this.#exchange(r, conn, request);
      // A kept connection the server had closed meanwhile: not the server's fault, try a new one.
      if (outcome.kind !== 'stale') return outcome;
    }
  }

  /** The health checker marked a server down: stop waiting on it. */
  upstreamDown(name: string): void {
    for (const [end, upstream] of [...this.#open]) if (upstream === name) end();
  }

  /** Shutdown: no more kept connections. */
  close(): void {
    this.#pool.close();
  }

  #exchange(r: SocketRead, conn: PooledConnection, request: Buffer): Promise<Exchange> {
    const { client, upstream } = r;
    const socket = conn.socket;
    const health = this.#opts.health;
    return new Promise<Exchange>((resolve) => {
      let pendingHead: Buffer | undefined;
      let framer: BodyFramer | undefined;
      let statusCode = 0;
      let reusable = false;
      let closeClient = r.close;
      let recorder: GuardedRecorder | undefined;
      let lastError: string | undefined;
      let received = false;
      let connected = !socket.connecting;
      let settled = false;
      let connectTimer: NodeJS.Timeout | undefined;

      const cleanup = () => {
        settled = true;
        this.#open.delete(abandon);
        if (connectTimer !== undefined) clearTimeout(connectTimer);
        conn.consume = undefined;
        socket.removeListener('close', onUpstreamClose);
        socket.removeListener('error', onError);
        client.removeListener('close', onClientClose);
        client.removeListener('drain', onClientDrain);
      };
      /**
       * Before the answer began: nothing reached the client. A server that
       * took the connection is not reported: the slow path tries it again and
       * reports what it finds. One that could not be reached is reported now,
       * and not tried again: a black-holed link's connect timeout is paid once.
       */
      const notSent = (error: string, observed = true) => {
        if (settled) return;
        cleanup();
        socket.destroy();
        if (!connected && observed) health.reportFailure(upstream, error);
        resolve({ kind: 'not-sent', error, unreachable: !connected });
      };
      const broken = (error: string, serverFault: boolean, clientGone = false) => {
        if (settled) return;
        cleanup();
        socket.destroy();
        recorder?.abort(error);
        if (serverFault) health.reportFailure(upstream, error);
        client.destroy();
        resolve(clientGone ? { kind: 'client-gone' } : { kind: 'broken', statusCode, error });
      };
      const complete = (extraBytes: boolean) => {
        cleanup();
        if (reusable && !extraBytes) this.#pool.keep(conn);
        else socket.destroy();
        const commit = recorder?.end();
        if (commit !== undefined) this.#opts.track(commit);
        resolve({ kind: 'answered', statusCode, closeClient });
      };

      /**
       * The answer's payload, until the recorder exists: it is made after the
       * first write, in the same read, so these views are still valid then.
       */
      let early: Buffer[] | undefined;
      const take = (payload: Buffer) => {
        if (early !== undefined) early.push(payload);
        else recorder?.writeBorrowed(payload);
      };
      /**
       * After the client has the start of the answer: the health report and
       * the recorder are not on the way of its first byte.
       */
      const startRecording = (head: ResponseHead) => {
        health.reportSuccess(upstream);
        recorder = new GuardedRecorder(
          r.recorderFor,
          statusCode,
          () => head.headers(),
          this.#opts.log,
          r.hubReq,
        );
        const payload = early ?? [];
        early = undefined;
        for (const p of payload) recorder.writeBorrowed(p);
      };

      /**
       * Relays the body bytes at the start of `bytes` (after `prefix`, the
       * client's head); `done` once the client's socket no longer needs them.
       */
      const relay = (bytes: Buffer, done: () => void, prefix?: Buffer): boolean => {
        let used: number;
        try {
          used = framer?.consume(bytes, take) ?? 0;
        } catch (err) {
          done();
          broken(`${upstream.name} sent a malformed body: ${(err as Error).message}`, true);
          return false;
        }
        const body = used === bytes.length ? bytes : bytes.subarray(0, used);
        let flowing = true;
        if (prefix !== undefined) {
          // One writev for head and body, without copying the body behind the head.
          client.cork();
          flowing = client.write(prefix);
          if (body.length > 0) flowing = client.write(body, done);
          client.uncork();
        } else if (body.length > 0) {
          flowing = client.write(body, done);
        }
        if (body.length === 0) done();
        // Node's socket says "full" past 16 KiB; pausing upstream at every such
        // write costs a read stop and start per list. Up to a MiB waits in Node.
        if (!flowing && client.writableLength > CLIENT_BUFFER_BYTES) {
          socket.pause();
          client.once('drain', onClientDrain);
        }
        extra = used < bytes.length;
        return true;
      };
      let extra = false;
      const onData = (chunk: Buffer, done: () => void) => {
        received = true;
        if (framer !== undefined) {
          if (relay(chunk, done) && framer.done) complete(extra);
          return;
        }
        const buf = pendingHead === undefined ? chunk : Buffer.concat([pendingHead, chunk]);
        let parsed: ReturnType<typeof parseResponseHead>;
        try {
          parsed = parseResponseHead(buf);
        } catch (err) {
          done();
          const why = err instanceof FramingError ? err.message : String(err);
          notSent(`${upstream.name} sent a malformed answer: ${why}`);
          return;
        }
        if (parsed === undefined) {
          // Kept across reads: a copy of the reused read buffer (a concatenation is one already).
          pendingHead = buf === chunk ? Buffer.from(chunk) : buf;
          done();
          return;
        }
        pendingHead = undefined;
        const { head, body } = parsed;
        framer = body;
        statusCode = head.statusCode;
        reusable = head.reusable;
        closeClient ||= head.untilClose;
        early = [];
        const relayed = relay(
          buf.subarray(head.length),
          done,
          clientResponseHead(head.statusLine, head.lines, closeClient),
        );
        if (!relayed) return; // broken: nothing to record
        startRecording(head);
        if (framer.done) complete(extra);
      };
      const onError = (err: Error) => {
        lastError = describeError(err);
      };
      const onUpstreamClose = () => {
        if (settled) return;
        if (framer?.untilClose === true) {
          complete(false);
          return;
        }
        const why = lastError ?? 'the connection closed';
        if (framer !== undefined) {
          broken(`${upstream.name} closed the answer before it was complete (${why})`, true);
        } else if (conn.reused && !received) {
          cleanup();
          socket.destroy();
          resolve({ kind: 'stale' });
        } else {
          notSent(`${upstream.name}: ${why}`);
        }
      };
      const onClientClose = () => {
        if (settled) return;
        if (framer === undefined) {
          cleanup();
          socket.destroy();
          resolve({ kind: 'client-gone' });
          return;
        }
        broken('the client closed the connection', false, true);
      };
      const onClientDrain = () => socket.resume();
      const abandon = () => {
        const why = `${upstream.name} was marked down`;
        // The health checker's own verdict: not one more failure to report.
        if (framer === undefined) notSent(why, false);
        else broken(why, false);
      };

      this.#open.set(abandon, upstream.name);
      conn.consume = onData;
      socket.on('error', onError);
      socket.on('close', onUpstreamClose);
      client.on('close', onClientClose);
      if (socket.connecting) {
        connectTimer = setTimeout(() => {
          lastError = `connect timed out after ${this.#opts.connectTimeoutMs}ms`;
          socket.destroy();
        }, this.#opts.connectTimeoutMs);
        socket.once(conn.upstream.url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
          connected = true;
          if (connectTimer !== undefined) clearTimeout(connectTimer);
        });
      }
      socket.resume();
      socket.write(request);
    });
  }
}

/** The request as upstream gets it: the client's headers, the hub's credentials when it sent none. */
function upstreamRequestHead(r: SocketRead, authorization: string | undefined): Buffer {
  const url = r.upstream.url;
  const prefix = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  const recording = r.recorderFor !== undefined;
  let out = `GET ${prefix}${r.head.target} HTTP/1.1\r\nHost: ${url.host}\r\n`;
  for (const [name, value] of r.head.headers) {
    const key = name.toLowerCase();
    if (HOP_BY_HOP_REQUEST.has(key)) continue;
    // kubelet asks for protobuf first and accepts JSON; the cache stores JSON, uncompressed.
    if (recording && (key === 'accept' || key === 'accept-encoding')) continue;
    out += `${name}: ${value}\r\n`;
  }
  if (recording) out += 'Accept: application/json\r\nAccept-Encoding: identity\r\n';
  if (authorization !== undefined) out += `Authorization: ${authorization}\r\n`;
  return Buffer.from(`${out}\r\n`, 'latin1');
}

function clientResponseHead(statusLine: string, lines: readonly string[], close: boolean): Buffer {
  let out = `${statusLine}\r\n`;
  for (const line of lines) {
    if (HOP_BY_HOP_RESPONSE.has(line.slice(0, line.indexOf(':')).toLowerCase())) continue;
    out += `${line}\r\n`;
  }
  out += `${SOURCE_HEADER}: ${UPSTREAM_SOURCE}\r\n`;
  if (close) out += 'Connection: close\r\n';
  return Buffer.from(`${out}\r\n`, 'latin1');
}
