import type { Logger } from 'pino';
import type { ClusterWriter } from './actuator/cluster-writer.ts';
import type { Clock } from './clock.ts';
import type { EcmMetrics } from './ecm-metrics.ts';
import type { ClusterCache } from './kube/cluster-cache.ts';

/**
 * What every controller of a leadership term works with: the cache it
 * decides from, the writer it changes the cluster through, the clock it
 * reads time from, and its metrics and logs.
 */
export interface ControllerDeps {
  cache: ClusterCache;
  clock: Clock;
  writer: ClusterWriter;
  metrics: EcmMetrics;
  logger: Logger;
}
