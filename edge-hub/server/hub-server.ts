import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { nodeHttp } from '../node-http.ts';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  MAX_REQUEST_BODY_BYTES,
  expired,
  internalError,
  requestEntityTooLarge,
  serviceUnavailable,
  writeStatus,
  type KubeStatus,
} from '../../src/kube/status.ts';
import type { Logger } from '../../src/log.ts';
import type { CacheManager } from '../cache/cache-manager.ts';
import type { HubRequest } from '../hub-request.ts';
import { FOREIGN_CONTINUE_MESSAGE, isHubContinue } from '../local/continue-token.ts';
import type { LocalProxy } from '../local/local-proxy.ts';
import type { HostPort } from '../config.ts';
import type { HubMetrics } from '../hub-metrics.ts';
import { GuardedRecorder, type RecorderFactory } from '../remote/guarded-recorder.ts';
import { isReadVerb } from '../remote/forwarding-policy.ts';
import type { RemoteProxy } from '../remote/remote-proxy.ts';
import { LOCAL_SOURCE, SOURCE_HEADER } from '../response-source.ts';
import { writeRawStatus } from '../remote/upgrade-proxy.ts';
import type { UpstreamState } from '../upstream/health-checker.ts';
import type { Upstream } from '../upstream/upstream.ts';
import type { FilterChain } from '../filter/filter-chain.ts';
import { classifyRequest } from './classify.ts';
import { isHubEndpoint, serveHubEndpoint, type HubEndpointDeps } from './hub-endpoints.ts';
import { readRequestBody } from './request-body.ts';
import type { SharedResources } from '../shared/shared-resources.ts';
import { serveSharedList, serveSharedWatch } from '../shared/shared-answer.ts';
import { planShared } from '../shared/shared-query.ts';

/** What the server needs from the cache side (edge-hub/cache, edge-hub/local). */
export type HubCache = Pick<CacheManager, 'isCacheable' | 'recorder'>;
export type OfflineAnswerer = Pick<
  LocalProxy,
  'serve' | 'closeWatches' | 'expireWatches' | 'openWatches' | 'answersExactly'
>;

/** "Is upstream up?": asked here and nowhere else (HealthChecker). */
export interface UpstreamRouting {
  routable(): readonly Upstream[];
  /** 'unknown' until a server has been seen up or every one down (HealthChecker.overall()). */
  overall?(): UpstreamState;
}

/**
 * How long a component's read waits for upstream while no server has been
 * seen up or down yet (a node just booted), when the cache could answer it
 * exactly: a link that accepts connections but never answers would otherwise
 * hold the first answers for the whole health timeout. A read the cache
 * cannot answer exactly waits for upstream instead (up to the client's own
 * timeout, or until the server is marked down): an early fallback would be a
 * 503 where upstream, only slow, would have answered.
 */
export const UNKNOWN_UPSTREAM_WAIT_MS = 300;

export interface HubServerDeps {
  cacheAgents: readonly string[];
  routing: UpstreamRouting;
  remote: RemoteProxy;
  cache: HubCache;
  local: OfflineAnswerer;
  metrics: HubMetrics;
  endpoints: HubEndpointDeps;
  log: Logger;
  clock?: () => number;
  /** The response filters (edge-hub/filter/); none when absent. */
  filters?: FilterChain;
  /** `--shared-resources`, read through one upstream watch (edge-hub/shared/); none when absent. */
  shared?: SharedResources;
}

/** An idle keep-alive connection is closed after this long. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/**
 * The hub's listener: classify -> route (online / offline) -> record or answer.
 *
 *   body size check (413) -> parseRequestInfo (400) -> client identity
 *   -> HealthChecker.routable(): servers to try, or none (offline)
 *   -> RemoteProxy (tees into the cache's recorder) or LocalProxy.serve
 *
 * A read that cannot reach any server is answered from the cache, so a node
 * that boots with its link down serves at once. Components outside
 * --cache-agents are proxied online and get a 503 Status offline.
 */
export class HubServer {
  readonly #deps: HubServerDeps;
  readonly #clock: () => number;
  readonly #servers: Server[] = [];
  readonly #inFlight = new Set<ServerResponse>();
  readonly #idleWaiters: Array<() => void> = [];
  /** exec/attach sessions: not requests the server tracks, so ended by hand on close. */
  readonly #upgraded = new Set<Duplex>();
  #closing = false;
  /**
   * The cache answered because no routable server could be reached: end
   * those watches once a server answers again.
   */
  #strayOfflineWatches = false;

  constructor(deps: HubServerDeps) {
    this.#deps = deps;
    this.#clock = deps.clock ?? (() => performance.now());
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** The kube-apiserver-like listener (plain HTTP, loopback). */
  async listen(at: HostPort): Promise<AddressInfo> {
    const server = nodeHttp.createServer((req, res) => this.handle(req, res));
    // A client that asks before sending a body learns it is too large
    // before it sends a byte of it.
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      if (Number(req.headers['content-length'] ?? 0) <= MAX_REQUEST_BODY_BYTES) {
        res.writeContinue();
      }
      this.handle(req, res);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#upgraded.add(socket);
      socket.once('close', () => this.#upgraded.delete(socket));
      this.#upgrade(req, socket, head).catch((err: unknown) => {
        this.#deps.log.error({ err, path: req.url }, 'upgrade failed inside the hub');
        socket.destroy();
      });
    });
    return this.#start(server, at);
  }

  /** The metrics listener: the hub's own endpoints only. */
  async listenMetrics(at: HostPort): Promise<AddressInfo> {
    const server = nodeHttp.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (isHubEndpoint(req.method, path)) {
        serveHubEndpoint(req, res, path, this.#deps.endpoints);
        return;
      }
      res.setHeader(SOURCE_HEADER, LOCAL_SOURCE);
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found: this address serves /metrics, /healthz, /readyz and /edgebox/status\n');
    });
    return this.#start(server, at);
  }

  #start(server: Server, at: HostPort): Promise<AddressInfo> {
    // Watches are long; kubelet's own timeouts (timeoutSeconds) govern them.
    server.requestTimeout = 0;
    server.headersTimeout = 60_000;
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new Error(`listening on ${at.host}:${at.port} failed: ${err.message}`, { cause: err }),
        ),
      );
      server.listen(at.port, at.host, () => {
        this.#servers.push(server);
        resolve(server.address() as AddressInfo);
      });
    });
  }

  /** "Is upstream up?": the servers to try, best first; none means offline. */
  #upstreams(): readonly Upstream[] {
    return this.#deps.routing.routable();
  }

  /** exec/attach/port-forward: online only; offline a 503 Status says why. */
  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    const classified = classifyRequest(req, undefined, this.#deps.cacheAgents);
    if ('kind' in classified) {
      writeRawStatus(socket, classified);
      return;
    }
    if (await this.#deps.remote.upgrade(req, socket, head, this.#upstreams())) return;
    writeRawStatus(
      socket,
      serviceUnavailable(
        `the node is offline: ${classified.hubReq.info.path} needs a connection to kube-apiserver`,
        5,
      ),
    );
  }

  /** Upstream answered again (a successful probe): end watches the cache served meanwhile. */
  upstreamAnswered(): void {
    if (!this.#strayOfflineWatches) return;
    this.#strayOfflineWatches = false;
    this.#deps.local.expireWatches();
  }

  /** Where a component's answer is recorded (undefined: it is not). */
  #recorderFor(hubReq: HubRequest, cacheAgent: boolean): RecorderFactory | undefined {
    const cache = this.#deps.cache;
    if (!cacheAgent || !cache.isCacheable(hubReq)) return undefined;
    return (statusCode, headers) => cache.recorder(hubReq, statusCode, headers);
  }

  /** Metrics and the debug line of an answered request, whichever path answered it. */
  #observe(
    verb: string,
    component: string,
    path: string,
    source: string,
    code: number,
    started: number,
  ): void {
    const seconds = (this.#clock() - started) / 1000;
    this.#deps.metrics.observeRequest(verb, component, source, code, seconds);
    // Checked first: the record would be built for every request only to be dropped.
    if (this.#deps.log.isLevelEnabled('debug')) {
      this.#deps.log.debug(
        { verb, path, component, source, code, ms: Math.round(seconds * 1000) },
        'request',
      );
    }
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const started = this.#clock();
    this.#inFlight.add(res);
    let verb = (req.method ?? 'GET').toLowerCase();
    let component = 'unknown';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    res.on('close', () => {
      this.#inFlight.delete(res);
      if (this.#inFlight.size === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
      const source = String(res.getHeader(SOURCE_HEADER) ?? 'none');
      this.#observe(verb, component, path, source, res.headersSent ? res.statusCode : 0, started);
    });
    if (isHubEndpoint(req.method, path)) {
      verb = 'hub';
      serveHubEndpoint(req, res, path, this.#deps.endpoints);
      return;
    }
    this.#route(req, res, (v, c) => {
      verb = v;
      component = c;
    }).catch((err: unknown) => {
      this.#deps.log.error({ err, method: req.method, path }, 'request failed inside the hub');
      if (!res.headersSent) {
        writeLocalStatus(res, internalError(`edgebox hub: ${(err as Error).message}`));
      } else {
        res.destroy();
      }
    });
  }

  async #route(
    req: IncomingMessage,
    res: ServerResponse,
    identify: (verb: string, component: string) => void,
  ): Promise<void> {
    const d = this.#deps;
    const body = await readRequestBody(req, MAX_REQUEST_BODY_BYTES);
    if (body.kind === 'too-large') {
      // Connection: close so the rest of the body is not read as a next request.
      writeLocalStatus(res, requestEntityTooLarge(MAX_REQUEST_BODY_BYTES), {
        Connection: 'close',
      });
      return;
    }
    if (body.kind === 'aborted') {
      res.destroy();
      return;
    }
    const classified = classifyRequest(req, body.body, d.cacheAgents);
    if ('kind' in classified) {
      writeLocalStatus(res, classified);
      return;
    }
    const { hubReq, cacheAgent } = classified;
    identify(hubReq.info.verb, hubReq.component);

    const targets = this.#upstreams();
    if (targets.length === 0) {
      d.metrics.offlineFallbacks.inc({ reason: 'offline' });
      await this.#offline(req, res, hubReq, cacheAgent, 'kube-apiserver is unreachable');
      return;
    }
    if (hubReq.info.verb === 'list' && isHubContinue(hubReq.query.get('continue') ?? '')) {
      // A page of an offline list, asked for once upstream is back: kube-apiserver
      // would call the token malformed (400); the client must start over instead.
      writeLocalStatus(res, expired(FOREIGN_CONTINUE_MESSAGE));
      return;
    }
    if (cacheAgent && (await this.#servedShared(res, hubReq))) return;
    const stillUnknown = () => d.routing.overall?.() === 'unknown';
    const impatient =
      cacheAgent &&
      isReadVerb(hubReq.info.verb) &&
      stillUnknown() &&
      (await d.local.answersExactly(hubReq));
    const outcome = await d.remote.forward({
      req,
      res,
      hubReq,
      targets,
      recorderFor: this.#recorderFor(hubReq, cacheAgent),
      rewrite: d.filters?.for(hubReq),
      impatience: impatient ? { ms: UNKNOWN_UPSTREAM_WAIT_MS, stillUnknown } : undefined,
    });
    if (outcome.kind !== 'unreachable') return;
    if (outcome.mayHaveReachedUpstream && !isReadVerb(hubReq.info.verb)) {
      writeLocalStatus(
        res,
        serviceUnavailable(
          `the connection to kube-apiserver broke after the ${hubReq.info.verb} was sent; ` +
            `it may or may not have been applied (${outcome.error})`,
          1,
        ),
      );
      return;
    }
    await this.#unreachable(req, res, hubReq, cacheAgent, outcome.error);
  }

  /**
   * Online, a cache agent's LIST or WATCH of a shared resource is answered
   * from the node's one upstream watch of it, once that has listed, when
   * the watch cache would answer it (shared/shared-query.ts); else it goes
   * upstream as any other request.
   */
  async #servedShared(res: ServerResponse, hubReq: HubRequest): Promise<boolean> {
    const shared = this.#deps.shared;
    const verb = hubReq.info.verb;
    if (shared === undefined || (verb !== 'list' && verb !== 'watch')) return false;
    const plan = planShared(hubReq);
    // Started all the same, so the components' next LIST and WATCH are shared.
    const resource = await shared.forRequest(hubReq, plan.kind !== 'upstream');
    if (resource === undefined || plan.kind === 'upstream') return false;
    const ctx = {
      rewrite: this.#deps.filters?.for(hubReq),
      recorder: () =>
        new GuardedRecorder(
          this.#recorderFor(hubReq, true),
          200,
          () => ({ 'content-type': 'application/json' }),
          this.#deps.log,
          hubReq,
        ),
    };
    if (plan.kind === 'list') {
      return (await serveSharedList(hubReq, res, resource, plan, ctx)) === 'answered';
    }
    await serveSharedWatch(hubReq, res, resource, plan, ctx);
    return true;
  }

  /** Online, but no server could be reached for this request: answered as offline. */
  async #unreachable(
    req: IncomingMessage,
    res: ServerResponse,
    hubReq: HubRequest,
    cacheAgent: boolean,
    error: string,
  ): Promise<void> {
    const d = this.#deps;
    d.log.debug(
      { path: hubReq.info.path, component: hubReq.component, error },
      'no upstream reachable; answering locally',
    );
    d.metrics.offlineFallbacks.inc({ reason: 'unreachable' });
    // Watches answered now must end once upstream answers a probe again.
    this.#strayOfflineWatches = true;
    await this.#offline(req, res, hubReq, cacheAgent, error);
  }

  async #offline(
    req: IncomingMessage,
    res: ServerResponse,
    hubReq: HubRequest,
    cacheAgent: boolean,
    why: string,
  ): Promise<void> {
    if (cacheAgent) {
      // LocalProxy says so too; set here as well so metrics and logs can read it back.
      res.setHeader(SOURCE_HEADER, LOCAL_SOURCE);
      await this.#deps.local.serve(req, res, hubReq);
      return;
    }
    writeLocalStatus(
      res,
      serviceUnavailable(
        `the node is offline (${why}) and requests of ${JSON.stringify(hubReq.component)} ` +
          'are not answered from the cache (see --cache-agents)',
        5,
      ),
    );
  }

  /**
   * Stops accepting, ends every watch (offline ones and proxied ones, both
   * cleanly so clients re-list elsewhere), waits up to `graceMs` for the
   * rest, then cuts what is left.
   */
  async close(graceMs = 5000): Promise<void> {
    this.#closing = true;
    const closed = this.#servers.map(
      (s) => new Promise<void>((resolve) => s.close(() => resolve())),
    );
    for (const s of this.#servers) s.closeIdleConnections();
    this.#deps.local.closeWatches();
    this.#deps.remote.endAll();
    if (this.#inFlight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#idleWaiters.push(resolve)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    for (const s of this.#servers) s.closeAllConnections();
    for (const socket of this.#upgraded) socket.destroy();
    await Promise.all(closed);
    this.#servers.length = 0;
  }
}

/** A Status the hub answers itself; the source is set as a header so metrics can read it back. */
function writeLocalStatus(
  res: ServerResponse,
  status: KubeStatus,
  extra: Record<string, string> = {},
): void {
  res.setHeader(SOURCE_HEADER, LOCAL_SOURCE);
  writeStatus(res, status, extra);
}
