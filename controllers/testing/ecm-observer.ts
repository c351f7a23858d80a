import type { Clock } from '../clock.ts';
import type { ClusterCache } from '../kube/cluster-cache.ts';
import { findCondition, podKey, type Node } from '../kube/objects.ts';

/** What a test wants to know about a run: when things happened, on the simulated clock. */
export interface Observations {
  /** Pod key -> time it started terminating. */
  evictedAt: Map<string, number>;
  /** Pod key -> time its Ready condition went False. */
  notReadyAt: Map<string, number>;
  /** Node name -> times a NoExecute taint appeared on it. */
  noExecuteAt: Map<string, number[]>;
}

function hasNoExecute(node: Node | undefined): boolean {
  return node?.spec.taints?.some((t) => t.effect === 'NoExecute') ?? false;
}

/** Records evictions, pods going NotReady and NoExecute taints as an ECM's cache sees them. */
export function observe(cache: ClusterCache, clock: Clock): Observations {
  const obs: Observations = { evictedAt: new Map(), notReadyAt: new Map(), noExecuteAt: new Map() };
  cache.addListener({
    podChanged: (old, next) => {
      if (next === undefined) return;
      const key = podKey(next);
      if (
        next.metadata.deletionTimestamp !== undefined &&
        old?.metadata.deletionTimestamp === undefined
      ) {
        obs.evictedAt.set(key, clock.now());
      }
      const ready = findCondition(next.status.conditions, 'Ready')?.status;
      const before = findCondition(old?.status.conditions, 'Ready')?.status;
      if (ready === 'False' && before !== 'False' && !obs.notReadyAt.has(key)) {
        obs.notReadyAt.set(key, clock.now());
      }
    },
    nodeChanged: (old, next) => {
      if (next !== undefined && hasNoExecute(next) && !hasNoExecute(old)) {
        const list = obs.noExecuteAt.get(next.metadata.name) ?? [];
        list.push(clock.now());
        obs.noExecuteAt.set(next.metadata.name, list);
      }
    },
  });
  return obs;
}
