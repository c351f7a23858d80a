import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { UpstreamState } from './upstream/health-checker.ts';

/** Distinct component labels kept before new ones are counted as `other`. */
const MAX_COMPONENT_LABELS = 32;
/** Cached metric children per request label set (observeRequest). */
const MAX_CACHED_LABEL_SETS = 4096;

interface RequestChildren {
  requests: { inc(): void };
  duration: { observe(value: number): void } | undefined;
}

/**
 * The proxy's metrics (the cache registers its own in the same registry).
 * Request duration is time to the last byte, so watches are left out of
 * the histogram: their length is the watch timeout, not latency.
 */
export class HubMetrics {
  readonly requests: Counter<'verb' | 'component' | 'source' | 'code'>;
  readonly duration: Histogram<'verb' | 'source'>;
  readonly upstreamUp: Gauge<'server'>;
  readonly upstreamFailures: Counter<'server'>;
  readonly offlineFallbacks: Counter<'reason'>;
  readonly #components = new Set<string>();
  readonly #children = new Map<string, RequestChildren>();

  constructor(registry: Registry, openOfflineWatches: () => number) {
    this.requests = new Counter({
      name: 'edgebox_hub_requests_total',
      help: 'Requests answered by the hub, by verb, client component, source (upstream or cache) and HTTP code',
      labelNames: ['verb', 'component', 'source', 'code'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'edgebox_hub_request_duration_seconds',
      help: 'Time from request to last response byte, watches excluded',
      labelNames: ['verb', 'source'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    this.upstreamUp = new Gauge({
      name: 'edgebox_hub_upstream_up',
      help: 'Whether the hub considers an upstream apiserver up (1), down (0); absent while unknown',
      labelNames: ['server'],
      registers: [registry],
    });
    this.upstreamFailures = new Counter({
      name: 'edgebox_hub_upstream_failures_total',
      help: 'Failed health probes and proxied requests that could not reach an upstream',
      labelNames: ['server'],
      registers: [registry],
    });
    this.offlineFallbacks = new Counter({
      name: 'edgebox_hub_offline_answers_total',
      help: 'Requests answered locally because no upstream was routable or reachable',
      labelNames: ['reason'],
      registers: [registry],
    });
    new Gauge({
      name: 'edgebox_hub_offline_watches',
      help: 'Watches currently served from the cache',
      registers: [registry],
      collect() {
        this.set(openOfflineWatches());
      },
    });
  }

  componentLabel(component: string): string {
    if (this.#components.has(component)) return component;
    if (this.#components.size >= MAX_COMPONENT_LABELS) return 'other';
    this.#components.add(component);
    return component;
  }

  observeRequest(
    verb: string,
    component: string,
    source: string,
    code: number,
    seconds: number,
  ): void {
    // prom-client hashes a label object on every call; the children are looked up once per label set.
    const key = `${verb}\u0000${component}\u0000${source}\u0000${code}`;
    let children = this.#children.get(key);
    if (children === undefined) {
      children = {
        requests: this.requests.labels({
          verb,
          component: this.componentLabel(component),
          source,
          code: String(code),
        }),
        duration: verb === 'watch' ? undefined : this.duration.labels({ verb, source }),
      };
      // Label sets are few (verbs x components x sources x codes); a hostile client
      // varying them cannot grow this past the component cap, but bound it anyway.
      if (this.#children.size >= MAX_CACHED_LABEL_SETS) this.#children.clear();
      this.#children.set(key, children);
    }
    children.requests.inc();
    children.duration?.observe(seconds);
  }

  setUpstreamState(server: string, state: UpstreamState): void {
    if (state === 'unknown') this.upstreamUp.remove({ server });
    else this.upstreamUp.set({ server }, state === 'up' ? 1 : 0);
  }
}
