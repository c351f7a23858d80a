import type {
  ClientRequest,
  IncomingHttpHeaders,
  IncomingMessage,
  ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import { Stream, type Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Logger } from '../../src/log.ts';
import type { RequestInfo } from '../../src/kube/request-info.ts';
import type { HubRequest, ResponseRecorder } from '../cache/cache-manager.ts';
import { SOURCE_HEADER, UPSTREAM_SOURCE } from '../response-source.ts';
import type { Upstream } from '../upstream/upstream.ts';
import { forwardUpgrade } from './upgrade-proxy.ts';
import { DirectRelay, WatchLineRelay } from './watch-line-relay.ts';

/** What the proxy tells the health checker about each attempt. */
export interface UpstreamReporter {
  reportSuccess(upstream: Upstream): void;
  reportFailure(upstream: Upstream, reason: string): void;
}

export interface ForwardRequest {
  req: IncomingMessage;
  res: ServerResponse;
  hubReq: HubRequest;
  /** Servers to try, best first (HealthChecker.routable()). */
  targets: readonly Upstream[];
  /**
   * Set when the response is to be recorded: upstream is asked for JSON and
   * the body is teed into the recorder this returns (if any).
   */
  recorderFor?: (statusCode: number, headers: IncomingHttpHeaders) => ResponseRecorder | undefined;
  /**
   * Reads while no server has been seen up or down yet: when no answer has
   * begun within `ms` and `stillUnknown()` still says so, stop waiting (the
   * caller answers from the cache). Not reported as a failure: it is the
   * hub's impatience, not the server's fault.
   */
  impatience?: { ms: number; stillUnknown: () => boolean };
}

export type ForwardOutcome =
  /** Upstream answered; its response is being (or was) relayed. */
  | { kind: 'answered'; upstream: Upstream }
  /** No server answered; nothing was written to the client. */
  | { kind: 'unreachable'; mayHaveReachedUpstream: boolean; error: string }
  /** The client went away before an answer. */
  | { kind: 'client-gone' };

type AttemptResult =
  | { kind: 'answered' }
  | { kind: 'failed'; delivered: boolean; error: string }
  | { kind: 'client-gone' }
  | { kind: 'impatient' };

/** The end of a request's impatience (ForwardRequest.impatience), shared by its attempts. */
class AnswerDeadline {
  passed = false;
  #timer: NodeJS.Timeout | undefined;
  #onPass: (() => void) | undefined;

  constructor(impatience: ForwardRequest['impatience']) {
    if (impatience === undefined) return;
    this.#timer = setTimeout(() => {
      if (!impatience.stillUnknown()) return; // a server is known now: wait as usual
      this.passed = true;
      this.#onPass?.();
    }, impatience.ms);
  }

  /** What to do should it pass while an attempt waits (undefined: nothing). */
  during(onPass: (() => void) | undefined): void {
    this.#onPass = onPass;
  }

  clear(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }
}

const READ_VERBS = new Set(['get', 'list', 'watch']);

/** Request headers that belong to the client's connection, not to the request. */
const HOP_BY_HOP_REQUEST = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
  // The body is already read and sent whole; upstream must not wait for it.
  'expect',
];

const HOP_BY_HOP_RESPONSE = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);

export interface RemoteProxyOptions {
  health: UpstreamReporter;
  /** A server that accepts no connection within this long is treated as unreachable. */
  connectTimeoutMs: number;
  log: Logger;
}

/**
 * Forwards one request to kube-apiserver with http-proxy, streaming the
 * answer to the client (a watch is never buffered) and teeing it into the
 * cache's recorder. Tries the next server when one cannot be reached and
 * retrying is safe (any read; a write that never reached a server).
 */
export class RemoteProxy {
  readonly #opts: RemoteProxyOptions;
  /** Streaming responses, by the upstream they come from: ends each cleanly. */
  readonly #open = new Map<() => void, string>();
  /** Attempts waiting for an answer, by upstream: aborts each (it then counts as unreachable). */
  readonly #pending = new Map<() => void, string>();
  readonly #commits = new Set<Promise<void>>();

  constructor(opts: RemoteProxyOptions) {
    this.#opts = opts;
  }

  /** Proxied responses still streaming (watches, mostly). */
  openResponses(): number {
    return this.#open.size;
  }

  /** Shutdown: end every streaming response (watches end cleanly at an event boundary). */
  endAll(): void {
    for (const end of [...this.#open.keys()]) end();
  }

  /**
   * The health checker marked a server down. A link that died silently
   * leaves requests waiting and watches quiet for minutes (TCP gives up
   * late): stop waiting, so unanswered reads are served from the cache and
   * watches end and resume, from the cache, where the client left off.
   */
  upstreamDown(name: string): void {
    for (const [abort, upstream] of [...this.#pending]) if (upstream === name) abort();
    for (const [end, upstream] of [...this.#open]) if (upstream === name) end();
  }

  /** Resolves when every recorded response has been committed (or failed to). */
  async drain(): Promise<void> {
    await Promise.all([...this.#commits]);
  }

  /**
   * An HTTP upgrade (exec, attach, port-forward) to the first routable
   * server; false when it could not be reached (nothing was written).
   * Never retried elsewhere: the command may already be running.
   */
  async upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    targets: readonly Upstream[],
  ): Promise<boolean> {
    const upstream = targets[0];
    if (upstream === undefined) return false;
    try {
      await forwardUpgrade(req, socket, head, upstream);
      this.#opts.health.reportSuccess(upstream);
      return true;
    } catch (err) {
      this.#opts.health.reportFailure(upstream, describeError(err as Error));
      return false;
    }
  }

  async forward(f: ForwardRequest): Promise<ForwardOutcome> {
    prepareHeaders(f.req, f.recorderFor !== undefined);
    const ownAuthorization = f.req.headers.authorization !== undefined;
    const isRead = READ_VERBS.has(f.hubReq.info.verb);
    let delivered = false;
    let lastError = 'no upstream server configured';
    const deadline = new AnswerDeadline(f.impatience);
    try {
      for (const upstream of f.targets) {
        const result = deadline.passed
          ? ({ kind: 'impatient' } as const)
          : await this.#attempt(f, upstream, ownAuthorization, deadline);
        if (result.kind === 'answered') return { kind: 'answered', upstream };
        if (result.kind === 'client-gone') return result;
        if (result.kind === 'impatient') {
          const ms = f.impatience?.ms ?? 0;
          return {
            kind: 'unreachable',
            mayHaveReachedUpstream: true,
            error: `no answer within ${ms}ms while no server has been seen up yet`,
          };
        }
        lastError = `${upstream.name}: ${result.error}`;
        this.#opts.health.reportFailure(upstream, result.error);
        delivered ||= result.delivered;
        // A write that reached a server may have been applied: never send it twice.
        if (result.delivered && !isRead) break;
      }
    } finally {
      deadline.clear();
    }
    return { kind: 'unreachable', mayHaveReachedUpstream: delivered, error: lastError };
  }

  async #attempt(
    f: ForwardRequest,
    upstream: Upstream,
    ownAuthorization: boolean,
    deadline: AnswerDeadline,
  ): Promise<AttemptResult> {
    const { req, res, hubReq } = f;
    if (!ownAuthorization) {
      const auth = await upstream.authorization();
      if (auth !== undefined) req.headers.authorization = auth;
      else delete req.headers.authorization;
    }
    if (deadline.passed) return { kind: 'impatient' };
    const proxy = httpProxy.createProxyServer({});
    return new Promise<AttemptResult>((resolve) => {
      let settled = false;
      let connected = false;
      let responded = false;
      let proxyReq: ClientRequest | undefined;
      let connectTimer: NodeJS.Timeout | undefined;
      const settle = (r: AttemptResult) => {
        if (settled) return;
        settled = true;
        this.#pending.delete(abandon);
        deadline.during(undefined);
        if (connectTimer !== undefined) clearTimeout(connectTimer);
        res.off('close', onClientCloseEarly);
        resolve(r);
      };
      const onClientCloseEarly = () => {
        if (responded) return;
        proxyReq?.destroy();
        settle({ kind: 'client-gone' });
      };
      res.on('close', onClientCloseEarly);
      const abandon = () => {
        proxyReq?.destroy();
        settle({ kind: 'failed', delivered: connected, error: `${upstream.name} was marked down` });
      };
      this.#pending.set(abandon, upstream.name);
      deadline.during(() => {
        proxyReq?.destroy(); // not created yet: destroyed as it comes (below)
        settle({ kind: 'impatient' });
      });

      proxy.on('proxyReq', (preq: ClientRequest) => {
        if (settled) {
          preq.destroy(); // given up on before it had a socket
          return;
        }
        proxyReq = preq;
        const socket = preq.socket as (Socket & { encrypted?: boolean }) | null;
        if (socket === null || !socket.connecting) {
          connected = socket !== null;
          return;
        }
        connectTimer = setTimeout(() => {
          preq.destroy(new Error(`connect timed out after ${this.#opts.connectTimeoutMs}ms`));
        }, this.#opts.connectTimeoutMs);
        socket.once(socket.encrypted === true ? 'secureConnect' : 'connect', () => {
          connected = true;
          if (connectTimer !== undefined) clearTimeout(connectTimer);
        });
      });
      proxy.on('econnreset', () => settle({ kind: 'client-gone' }));
      proxy.on('proxyRes', (proxyRes: IncomingMessage) => {
        if (settled) {
          proxyRes.destroy();
          return;
        }
        responded = true;
        connected = true;
        this.#opts.health.reportSuccess(upstream);
        settle({ kind: 'answered' });
        this.#relay(f, upstream, proxyRes, proxyReq);
      });

      const target = targetOf(upstream);
      proxy.web(
        req,
        res,
        {
          target,
          agent: ownAuthorization ? upstream.passthroughAgent : upstream.agent,
          changeOrigin: true,
          selfHandleResponse: true,
          // req.url is already the path to forward: spares a url.parse per request.
          toProxy: true,
          buffer: new ReadBody(hubReq.body),
        },
        (err: Error) => {
          if (responded) return; // a break after the answer began is the relay's business
          if (res.destroyed || req.socket.destroyed) {
            settle({ kind: 'client-gone' });
            return;
          }
          settle({ kind: 'failed', delivered: connected, error: describeError(err) });
        },
      );
    });
  }

  #relay(
    f: ForwardRequest,
    upstream: Upstream,
    proxyRes: IncomingMessage,
    proxyReq: ClientRequest | undefined,
  ): void {
    const { res, hubReq } = f;
    const log = this.#opts.log;
    const statusCode = proxyRes.statusCode ?? 502;
    copyResponseHeaders(proxyRes, res);
    res.setHeader(SOURCE_HEADER, UPSTREAM_SOURCE);
    res.writeHead(statusCode, proxyRes.statusMessage);
    // Watch clients wait for the headers before they count the watch as open; any
    // other answer that may pause goes out at once too. An object read's headers
    // leave with its body, in one write.
    if (!answersAtOnce(hubReq.info)) res.flushHeaders();

    let recorder: ResponseRecorder | undefined;
    try {
      recorder = f.recorderFor?.(statusCode, proxyRes.headers);
    } catch (err) {
      log.error({ err, path: hubReq.info.path }, 'cache recorder could not start; not recording');
    }
    const contentType = String(proxyRes.headers['content-type'] ?? '');
    const lineRelay =
      hubReq.info.verb === 'watch' && contentType.startsWith('application/json')
        ? new WatchLineRelay(res)
        : undefined;
    const relay = lineRelay ?? new DirectRelay(res);

    let state: 'streaming' | 'done' = 'streaming';
    const finish = () => {
      state = 'done';
      this.#open.delete(endNow);
    };
    const safeRecorder = (fn: (r: ResponseRecorder) => void) => {
      if (recorder === undefined) return;
      try {
        fn(recorder);
      } catch (err) {
        log.error({ err, path: hubReq.info.path }, 'cache recorder failed; not recording');
        recorder = undefined;
      }
    };
    const broken = (reason: string, upstreamFault: boolean) => {
      if (state !== 'streaming') return;
      finish();
      safeRecorder((r) => r.abort(reason));
      if (upstreamFault) this.#opts.health.reportFailure(upstream, reason);
      proxyRes.destroy();
      proxyReq?.destroy();
      if (lineRelay !== undefined && !res.destroyed) lineRelay.endAtBoundary();
      else res.destroy();
    };
    // Shutdown (or the server marked down) ends a watch the way a server-side timeout does.
    const endNow = () => broken('the hub is shutting down or the server was marked down', false);
    this.#open.set(endNow, upstream.name);

    proxyRes.on('data', (chunk: Buffer) => {
      if (state !== 'streaming') return;
      // The client first: recording (parsing) a burst of watch events must not delay it.
      if (!relay.write(chunk)) {
        proxyRes.pause();
        res.once('drain', () => proxyRes.resume());
      }
      safeRecorder((r) => r.write(chunk));
    });
    proxyRes.on('end', () => {
      if (state !== 'streaming') return;
      finish();
      relay.end();
      if (recorder === undefined) return;
      const commit = Promise.resolve()
        .then(() => recorder?.end())
        .catch((err: unknown) => {
          log.error(
            { err, path: hubReq.info.path, component: hubReq.component },
            'cache could not commit a recorded response',
          );
        })
        .finally(() => this.#commits.delete(commit));
      this.#commits.add(commit);
    });
    proxyRes.on('error', () => {
      // 'close' follows and decides; without a listener the error would crash the hub.
    });
    proxyRes.on('close', () => {
      if (state === 'streaming') {
        broken(`${upstream.name} closed the response before it was complete`, true);
      }
    });
    res.on('close', () => {
      if (state === 'streaming' && !res.writableFinished) {
        broken('the client closed the connection', false);
      }
    });
  }
}

/**
 * The request body, read whole before forwarding (fail-over may send it
 * twice), as the stream http-proxy pipes upstream: it ends the upstream
 * request at once, without a Readable and the event-loop turns it takes.
 */
class ReadBody extends Stream {
  readonly #body: Buffer | undefined;

  constructor(body: Buffer | undefined) {
    super();
    this.#body = body;
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T): T {
    if (this.#body === undefined) destination.end();
    else destination.end(this.#body);
    return destination;
  }
}

/** A get or list of objects: upstream sends the whole answer right behind its headers. */
function answersAtOnce(info: RequestInfo): boolean {
  return (
    (info.verb === 'get' || info.verb === 'list') &&
    (info.subresource === '' || info.subresource === 'status')
  );
}

/** Where http-proxy sends the request; a server URL's path (a proxy prefix) is kept. */
function targetOf(upstream: Upstream) {
  const u = upstream.url;
  const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return {
    protocol: u.protocol,
    host: hostname,
    hostname,
    port: u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port),
    path: u.pathname === '/' ? '' : u.pathname.replace(/\/$/, ''),
  };
}

function prepareHeaders(req: IncomingMessage, recording: boolean): void {
  for (const h of HOP_BY_HOP_REQUEST) delete req.headers[h];
  if (recording) {
    // kubelet asks for protobuf first and accepts JSON; the cache stores JSON.
    req.headers.accept = 'application/json';
    // The recorder parses the body as it streams; it must not be compressed.
    req.headers['accept-encoding'] = 'identity';
  }
}

function copyResponseHeaders(from: IncomingMessage, to: ServerResponse): void {
  const values = new Map<string, { name: string; values: string[] }>();
  const raw = from.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const key = name.toLowerCase();
    if (HOP_BY_HOP_RESPONSE.has(key)) continue;
    const entry = values.get(key);
    if (entry === undefined) values.set(key, { name, values: [raw[i + 1] ?? ''] });
    else entry.values.push(raw[i + 1] ?? '');
  }
  for (const { name, values: v } of values.values()) {
    to.setHeader(name, v.length === 1 ? (v[0] ?? '') : v);
  }
}

function describeError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code !== undefined && !err.message.includes(code)
    ? `${code}: ${err.message}`
    : err.message;
}
