import { Counter, Gauge, type Registry } from 'prom-client';
import type { SharedResourceObserver } from './shared-resource.ts';

/** A shared resource as metrics name it: `services`, `endpointslices.discovery.k8s.io`. */
export interface SharedResourceWatchers {
  resource: string;
  watchers: number;
}

export const SHARED_METRIC_NAMES = {
  watchers: 'edgebox_hub_shared_watchers',
  relists: 'edgebox_hub_shared_relists_total',
  events: 'edgebox_hub_shared_events_total',
} as const;

/** The metrics of the node's shared resources; each resource reports through its observer. */
export interface SharedMetrics {
  observerFor(resource: string): SharedResourceObserver;
}

/**
 * Registers the shared resources' metrics on the hub's registry (replacing
 * those of an earlier hub in the same process, as the cache's do).
 */
export function registerSharedMetrics(
  registry: Registry,
  watchers: () => Iterable<SharedResourceWatchers>,
): SharedMetrics {
  for (const name of Object.values(SHARED_METRIC_NAMES)) registry.removeSingleMetric(name);
  new Gauge({
    name: SHARED_METRIC_NAMES.watchers,
    help: 'Local watches served from the node-wide upstream watch of a shared resource',
    labelNames: ['resource'],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of watchers()) this.set({ resource: w.resource }, w.watchers);
    },
  });
  const relists = new Counter({
    name: SHARED_METRIC_NAMES.relists,
    help: 'Upstream LISTs of a shared resource, by reason: initial, expired (a 410) or error',
    labelNames: ['resource', 'reason'],
    registers: [registry],
  });
  const events = new Counter({
    name: SHARED_METRIC_NAMES.events,
    help: 'Changes of a shared resource received from upstream and passed to its local watchers',
    labelNames: ['resource'],
    registers: [registry],
  });
  return {
    observerFor: (resource) => ({
      relisted: (reason) => relists.inc({ resource, reason }),
      event: () => events.inc({ resource }),
    }),
  };
}
