import { Gauge, Histogram, type Registry } from 'prom-client';

export interface CachedObjectCount {
  component: string;
  resource: string;
  objects: number;
}

export interface CacheMetrics {
  /** One committed LevelDB batch: how long the synced write took and how many operations it held. */
  observeCommit(seconds: number, operations: number): void;
}

export const CACHE_METRIC_NAMES = {
  objects: 'edgebox_hub_cached_objects',
  writeSeconds: 'edgebox_hub_store_write_duration_seconds',
  batchSize: 'edgebox_hub_store_batch_operations',
} as const;

/**
 * Registers the cache's metrics on the hub's shared registry. A registry that
 * already has them (a second store opened in one process, e.g. in tests) gets
 * them replaced so the newest store is the one reported.
 */
export function registerCacheMetrics(
  registry: Registry,
  counts: () => Iterable<CachedObjectCount>,
): CacheMetrics {
  for (const name of Object.values(CACHE_METRIC_NAMES)) registry.removeSingleMetric(name);
  new Gauge({
    name: CACHE_METRIC_NAMES.objects,
    help: 'Objects held in the hub cache, per client component and resource',
    labelNames: ['component', 'resource'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of counts())
        this.set({ component: c.component, resource: c.resource }, c.objects);
    },
  });
  const writeSeconds = new Histogram({
    name: CACHE_METRIC_NAMES.writeSeconds,
    help: 'Time to commit one synced LevelDB batch (list replacement, watch events, writes)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const batchSize = new Histogram({
    name: CACHE_METRIC_NAMES.batchSize,
    help: 'LevelDB operations per committed batch (group commit size)',
    buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000],
    registers: [registry],
  });
  return {
    observeCommit(seconds, operations) {
      writeSeconds.observe(seconds);
      batchSize.observe(operations);
    },
  };
}
