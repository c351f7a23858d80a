import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Stream, type Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Logger } from '../../src/log.ts';
import type { RequestInfo } from '../../src/kube/request-info.ts';
import type { HubRequest } from '../hub-request.ts';
import type { Upstream } from '../upstream/upstream.ts';
import { describeError } from './describe-error.ts';
import { GuardedRecorder, type RecorderFactory } from './guarded-recorder.ts';
import {
  credentialsOf,
  mayRetryElsewhere,
  mayRetryOnNewConnection,
  prepareRequestHeaders,
  putHubAuthorization,
  responseHeaders,
  upstreamPath,
} from './forwarding-policy.ts';
import { forwardUpgrade } from './upgrade-proxy.ts';
import { DirectRelay, RewrittenBodyRelay, WatchLineRelay } from './watch-line-relay.ts';
import { rewriteListBody, rewriteWatchLines, type ObjectRewrite } from '../filter/filter-chain.ts';
import { notFound, writeStatus } from '../../src/kube/status.ts';

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
  recorderFor?: RecorderFactory | undefined;
  /** Set when response filters apply: upstream is asked for JSON and each object rewritten. */
  rewrite?: ObjectRewrite | undefined;
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
  | { kind: 'failed'; delivered: boolean; error: string; keptConnection?: boolean }
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

  /**
   * `pending`, or PASSED should the deadline pass first: a hub booting with a
   * kubeconfig resolves its credentials in a child process (about a second),
   * and an offline boot must answer from the cache meanwhile.
   */
  race<T>(pending: Promise<T>): Promise<T | typeof PASSED> {
    if (this.#timer === undefined) return pending;
    if (this.passed) return Promise.resolve(PASSED);
    return new Promise((resolve, reject) => {
      this.during(() => resolve(PASSED));
      pending.then(
        (value) => {
          this.during(undefined);
          resolve(value);
        },
        (err: unknown) => {
          this.during(undefined);
          reject(err as Error);
        },
      );
    });
  }
}

const PASSED = Symbol('answer deadline passed');

/** One try of one request against one server, as the shared proxy's events reach it. */
interface Attempt {
  onProxyReq(proxyReq: ClientRequest): void;
  onProxyRes(proxyRes: IncomingMessage): void;
  /** http-proxy saw ECONNRESET with the client's socket gone. */
  onClientReset(): void;
}

/** http-proxy hands each call's options (a copy, string keys kept) to its 'proxyReq' listeners. */
const ATTEMPT_OPTION = 'edgeboxAttempt';
type AttemptOptions = httpProxy.ServerOptions & { [ATTEMPT_OPTION]?: Attempt };
/**
 * The attempt a client request (the latest, which a client reset belongs to)
 * or an upstream request (whose response it awaits) belongs to: a property
 * rather than a WeakMap, which costs the garbage collector per short-lived key.
 */
const ATTEMPT = Symbol('edgebox attempt');
type WithAttempt<T> = T & { [ATTEMPT]?: Attempt };

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

  /**
   * One http-proxy for every request: its events carry the request's own
   * Attempt (in the options each call passes), so nothing is created or
   * subscribed per request beyond what the request itself needs.
   */
  readonly #proxy = httpProxy.createProxyServer({});

  constructor(opts: RemoteProxyOptions) {
    this.#opts = opts;
    this.#proxy.on('proxyReq', (preq: ClientRequest, _req, _res, options: AttemptOptions) => {
      const attempt = options[ATTEMPT_OPTION];
      if (attempt === undefined) return;
      (preq as WithAttempt<ClientRequest>)[ATTEMPT] = attempt;
      attempt.onProxyReq(preq);
    });
    this.#proxy.on('proxyRes', (proxyRes: IncomingMessage) => {
      const preq = (proxyRes as IncomingMessage & { req?: WithAttempt<ClientRequest> }).req;
      const attempt = preq?.[ATTEMPT];
      if (attempt === undefined) {
        proxyRes.destroy();
        return;
      }
      attempt.onProxyRes(proxyRes);
    });
    this.#proxy.on('econnreset', (_err: Error, req: WithAttempt<IncomingMessage>) => {
      req[ATTEMPT]?.onClientReset();
    });
  }

  /** Proxied responses still streaming (watches, mostly). */
  openResponses(): number {
    return this.#open.size;
  }

  /**
   * Shutdown: end every streaming response (watches end cleanly at an event
   * boundary); reads under way finish, on connections not kept afterwards.
   */
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

  #track(commit: Promise<void>): void {
    const tracked = commit.finally(() => this.#commits.delete(tracked));
    this.#commits.add(tracked);
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
    prepareRequestHeaders(
      f.req.headers,
      'request',
      f.recorderFor !== undefined || f.rewrite !== undefined,
    );
    const verb = f.hubReq.info.verb;
    let delivered = false;
    let lastError = 'no upstream server configured';
    const deadline = new AnswerDeadline(f.impatience);
    try {
      for (const upstream of f.targets) {
        let result = deadline.passed
          ? ({ kind: 'impatient' } as const)
          : await this.#attempt(f, upstream, deadline);
        if (
          result.kind === 'failed' &&
          result.keptConnection === true &&
          mayRetryOnNewConnection(verb) &&
          !deadline.passed
        ) {
          result = await this.#attempt(f, upstream, deadline);
        }
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
        if (!mayRetryElsewhere(verb, result.delivered)) break;
      }
    } finally {
      deadline.clear();
    }
    return { kind: 'unreachable', mayHaveReachedUpstream: delivered, error: lastError };
  }

  async #attempt(
    f: ForwardRequest,
    upstream: Upstream,
    deadline: AnswerDeadline,
  ): Promise<AttemptResult> {
    const { req, res, hubReq } = f;
    const credentials = credentialsOf(req.headers, upstream);
    if (!credentials.own) {
      const auth = await deadline.race(upstream.authorization());
      if (auth === PASSED) return { kind: 'impatient' };
      putHubAuthorization(req.headers, auth);
    }
    if (deadline.passed) return { kind: 'impatient' };
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

      const attempt: Attempt = {
        onProxyReq: (preq) => {
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
        },
        onProxyRes: (proxyRes) => {
          if (settled) {
            proxyRes.destroy();
            return;
          }
          responded = true;
          connected = true;
          this.#opts.health.reportSuccess(upstream);
          settle({ kind: 'answered' });
          this.#relay(f, upstream, proxyRes, proxyReq);
        },
        onClientReset: () => settle({ kind: 'client-gone' }),
      };
      (req as WithAttempt<IncomingMessage>)[ATTEMPT] = attempt;

      const options: AttemptOptions = {
        target: targetOf(upstream),
        agent: credentials.agent,
        changeOrigin: true,
        selfHandleResponse: true,
        // req.url is already the path to forward: spares a url.parse per request.
        toProxy: true,
        buffer: hubReq.body === undefined ? NO_BODY : new ReadBody(hubReq.body),
        [ATTEMPT_OPTION]: attempt,
      };
      this.#proxy.web(req, res, options, (err: Error) => {
        if (responded) return; // a break after the answer began is the relay's business
        if (res.destroyed || req.socket.destroyed) {
          settle({ kind: 'client-gone' });
          return;
        }
        settle({
          kind: 'failed',
          delivered: connected,
          error: describeError(err),
          keptConnection: proxyReq?.reusedSocket === true,
        });
      });
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
    const contentType = String(proxyRes.headers['content-type'] ?? '');
    const verb = hubReq.info.verb;
    // The response filters read JSON; anything else (a Status of an error too) passes as sent.
    const rewrite =
      statusCode === 200 && contentType.startsWith('application/json') ? f.rewrite : undefined;
    // Set one by one, not passed to writeHead: metrics read the source back (getHeader).
    for (const [name, value] of Object.entries(responseHeaders(proxyRes, 'request'))) {
      if (value !== undefined) res.setHeader(name, value);
    }
    if (rewrite !== undefined) res.removeHeader('content-length');
    const writeHead = () => res.writeHead(statusCode, proxyRes.statusMessage);
    const rewritesWhole = rewrite !== undefined && (verb === 'get' || verb === 'list');
    if (!rewritesWhole) {
      writeHead();
      // Watch clients wait for the headers before they count the watch as open; any
      // other answer that may pause goes out at once too. An object read's headers
      // leave with its body, in one write.
      if (!answersAtOnce(hubReq.info)) res.flushHeaders();
    }

    const recorder = new GuardedRecorder(
      f.recorderFor,
      statusCode,
      () => proxyRes.headers,
      log,
      hubReq,
    );
    const lineRelay =
      verb === 'watch' && contentType.startsWith('application/json')
        ? new WatchLineRelay(
            res,
            rewrite === undefined ? undefined : (lines) => rewriteWatchLines(rewrite, lines),
          )
        : undefined;
    const relay =
      lineRelay ??
      (rewritesWhole
        ? new RewrittenBodyRelay(
            res,
            writeHead,
            (body) => (verb === 'list' ? rewriteListBody(rewrite, body) : rewrite(body)),
            () =>
              writeStatus(
                res,
                notFound(
                  { group: hubReq.info.apiGroup, resource: hubReq.info.resource },
                  hubReq.info.name,
                ),
              ),
          )
        : new DirectRelay(res));

    let state: 'streaming' | 'done' = 'streaming';
    const finish = () => {
      state = 'done';
      this.#open.delete(endNow);
    };
    // Watch bytes gathered but not yet handed on (below); relayed and recorded before
    // the response ends or breaks, so complete events stay.
    let flushPending: (() => void) | undefined;
    const broken = (reason: string, upstreamFault: boolean) => {
      if (state !== 'streaming') return;
      flushPending?.();
      finish();
      recorder.abort(reason);
      if (upstreamFault) this.#opts.health.reportFailure(upstream, reason);
      proxyRes.destroy();
      proxyReq?.destroy();
      if (lineRelay !== undefined && !res.destroyed) lineRelay.endAtBoundary();
      else res.destroy();
    };
    // Shutdown (or the server marked down) ends a watch the way a server-side timeout does.
    const endNow = () => broken('the hub is shutting down or the server was marked down', false);
    this.#open.set(endNow, upstream.name);

    const pass = (chunk: Buffer) => {
      // The client first: recording (parsing) a burst of watch events must not delay it.
      // (A client already gone gets nothing: what was gathered is still recorded.)
      if (!res.destroyed && !relay.write(chunk)) {
        proxyRes.pause();
        res.once('drain', () => proxyRes.resume());
      }
      recorder.write(chunk);
    };
    if (hubReq.info.verb === 'watch') {
      // The apiserver sends each watch event as its own HTTP chunk, so one socket
      // read of a burst brings dozens of 'data' events. Gathered until that read
      // is handled (a microtask), they reach the client in one write and the
      // recorder as one batch instead of a write, an HTTP chunk and a store
      // operation per event.
      let gathered: Buffer[] = [];
      const flushGathered = () => {
        if (gathered.length === 0) return;
        const chunk = gathered.length === 1 ? gathered[0] : Buffer.concat(gathered);
        gathered = [];
        if (state === 'streaming' && chunk !== undefined) pass(chunk);
      };
      flushPending = flushGathered;
      proxyRes.on('data', (chunk: Buffer) => {
        if (state === 'streaming' && gathered.push(chunk) === 1) queueMicrotask(flushGathered);
      });
    } else {
      proxyRes.on('data', (chunk: Buffer) => {
        if (state === 'streaming') pass(chunk);
      });
    }
    proxyRes.on('end', () => {
      if (state !== 'streaming') return;
      flushPending?.();
      finish();
      relay.end();
      const commit = recorder.end();
      if (commit !== undefined) this.#track(commit);
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

/** Reads (most requests) carry no body: one stateless ReadBody serves them all. */
const NO_BODY = new ReadBody(undefined);

/** A get or list of objects: upstream sends the whole answer right behind its headers. */
function answersAtOnce(info: RequestInfo): boolean {
  return (
    (info.verb === 'get' || info.verb === 'list') &&
    (info.subresource === '' || info.subresource === 'status')
  );
}

const targets = new WeakMap<URL, ReturnType<typeof computeTarget>>();

/** Where http-proxy sends the request; a server URL's path (a proxy prefix) is kept. */
function targetOf(upstream: Upstream) {
  let target = targets.get(upstream.url);
  if (target === undefined) {
    target = computeTarget(upstream);
    targets.set(upstream.url, target);
  }
  return target;
}

function computeTarget(upstream: Upstream) {
  const u = upstream.url;
  const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return {
    protocol: u.protocol,
    host: hostname,
    hostname,
    port: u.port === '' ? (u.protocol === 'https:' ? 443 : 80) : Number(u.port),
    path: upstreamPath(upstream, ''),
  };
}
