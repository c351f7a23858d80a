import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../src/log.ts';
import { createMetricsRegistry } from '../src/metrics.ts';
import { CacheManager } from './cache/cache-manager.ts';
import { LocalProxy } from './local/local-proxy.ts';
import type { HubConfig } from './config.ts';
import { HubMetrics } from './hub-metrics.ts';
import type { HubStatus } from './hub-status.ts';
import { RemoteProxy } from './remote/remote-proxy.ts';
import { HubServer } from './server/hub-server.ts';
import { filterChain } from './filter/filters.ts';
import { HealthChecker, type Probe, type Timers } from './upstream/health-checker.ts';
import { createReadyzProbe } from './upstream/readyz-probe.ts';
import { buildUpstreams, destroyUpstreams, type Upstream } from './upstream/upstream.ts';
import { parseSharedResourceRef, SharedResources } from './shared/shared-resources.ts';
import { registerSharedMetrics } from './shared/shared-metrics.ts';

export interface StartHubOptions {
  log?: Logger;
  registry?: Registry;
  /** Tests replace the /readyz probe or the timers; production uses both as they are. */
  probe?: Probe<Upstream>;
  timers?: Timers;
}

export interface RunningHub {
  /** The listener node components talk to, e.g. http://127.0.0.1:10271. */
  url: string;
  address: AddressInfo;
  metricsAddress: AddressInfo;
  health: HealthChecker<Upstream>;
  cache: CacheManager;
  local: LocalProxy;
  remote: RemoteProxy;
  shared: SharedResources;
  registry: Registry;
  status(): Promise<HubStatus>;
  /** Graceful: stop accepting, end watches, let recorded responses commit, close the store. */
  close(): Promise<void>;
}

function urlOf(a: AddressInfo): string {
  return a.family === 'IPv6' ? `http://[${a.address}]:${a.port}` : `http://${a.address}:${a.port}`;
}

/** Composes EdgeHub from its parts and starts it. */
export async function startHub(config: HubConfig, opts: StartHubOptions = {}): Promise<RunningHub> {
  const log = opts.log ?? createLogger({ name: 'edgebox-hub', level: config.logLevel });
  const registry = opts.registry ?? createMetricsRegistry();
  const upstreams = await buildUpstreams(config, (err) =>
    log.warn(
      { err: err.message },
      'resolving the upstream kubeconfig failed; keeping the last credentials if there are any (reads are served from the cache until it succeeds)',
    ),
  );
  let cache: CacheManager;
  try {
    cache = await CacheManager.open({
      dataDir: config.dataDir,
      log: log.child({ part: 'cache' }),
      registry,
      nodeName: config.nodeName,
    });
  } catch (err) {
    // The store's error names the directory and why (locked, moved aside, ...).
    destroyUpstreams(upstreams);
    throw err;
  }
  const filters = filterChain(config);
  const local = new LocalProxy({
    cache,
    filters,
    log: log.child({ part: 'local' }),
    nodeName: config.nodeName,
  });
  const metrics = new HubMetrics(registry, () => local.openWatches());

  const probe = opts.probe ?? createReadyzProbe();
  const health = new HealthChecker<Upstream>({
    upstreams,
    probe: async (u, timeoutMs) => {
      const r = await probe(u, timeoutMs);
      if (!r.ok) metrics.upstreamFailures.inc({ server: u.name });
      return r;
    },
    intervalMs: config.healthInterval,
    timeoutMs: config.healthTimeout,
    failureThreshold: config.healthFailureThreshold,
    successThreshold: config.healthSuccessThreshold,
    log: log.child({ part: 'health' }),
    ...(opts.timers === undefined ? {} : { timers: opts.timers }),
  });
  const remote = new RemoteProxy({
    health: {
      reportSuccess: (u) => health.reportSuccess(u),
      reportFailure: (u, reason) => {
        metrics.upstreamFailures.inc({ server: u.name });
        health.reportFailure(u, reason);
      },
    },
    connectTimeoutMs: config.healthTimeout,
    log: log.child({ part: 'remote' }),
  });

  let storeOpen = true;
  const status = async (): Promise<HubStatus> => ({
    nodeName: config.nodeName,
    upstream: { state: health.overall(), servers: health.snapshot() },
    cache: await cache.summary(),
    cacheLost: cache.loss() ?? null,
    offlineWatches: local.openWatches(),
    proxiedStreams: remote.openResponses(),
  });
  const shared: SharedResources = new SharedResources({
    shared: config.sharedResources.map(parseSharedResourceRef),
    targets: () => health.routable(),
    log: log.child({ part: 'shared' }),
    syncWaitMs: config.healthTimeout,
    metrics: registerSharedMetrics(registry, () => shared.watchers()),
  });
  const server: HubServer = new HubServer({
    shared,
    cacheAgents: config.cacheAgents,
    routing: health,
    remote,
    cache,
    local,
    filters,
    metrics,
    endpoints: {
      isReady: (): boolean => storeOpen && !server.closing,
      cacheLoss: () => cache.loss(),
      upstreamUp: () => health.overall() === 'up',
      registry,
      status,
    },
    log: log.child({ part: 'server' }),
  });

  health.onChange((c) => {
    metrics.setUpstreamState(c.upstream, c.to);
    if (c.to === 'down') remote.upstreamDown(c.upstream);
  });
  // Clients holding offline watches must re-list from upstream once it is back.
  health.onOverallChange((c) => {
    if (c.to === 'up') local.expireWatches();
  });
  health.onProbeSuccess(() => server.upstreamAnswered());

  let address: AddressInfo;
  let metricsAddress: AddressInfo;
  try {
    health.start();
    address = await server.listen(config.listen);
    metricsAddress = await server.listenMetrics(config.metricsListen);
  } catch (err) {
    health.stop();
    await Promise.all([server.close(0), shared.close()]);
    await cache.close();
    destroyUpstreams(upstreams);
    throw err;
  }
  log.info(
    {
      listen: urlOf(address),
      metrics: urlOf(metricsAddress),
      upstreams: upstreams.map((u) => u.name),
      dataDir: config.dataDir,
      nodeName: config.nodeName,
      cacheAgents: config.cacheAgents,
    },
    'edgebox hub serving',
  );

  let closing: Promise<void> | undefined;
  return {
    url: urlOf(address),
    address,
    metricsAddress,
    health,
    cache,
    local,
    remote,
    shared,
    registry,
    status,
    close: () => {
      closing ??= (async () => {
        await Promise.all([server.close(), shared.close()]);
        health.stop();
        await remote.drain();
        storeOpen = false;
        await cache.close();
        destroyUpstreams(upstreams);
        log.info('edgebox hub stopped');
      })();
      return closing;
    },
  };
}
