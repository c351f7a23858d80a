import { describe, expect, it } from 'vitest';
import { MemoryCluster } from '../testing/memory-cluster.ts';
import { nodeProblemTolerations } from '../testing/cluster-objects.ts';
import { observe } from '../testing/ecm-observer.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;

/** A cluster whose node "sick" has just been tainted unreachable:NoExecute; returns when. */
async function taintedCluster(
  pods: (cluster: MemoryCluster) => void,
): Promise<{ cluster: MemoryCluster; taintedAt: number; seen: ReturnType<typeof observe> }> {
  const cluster = new MemoryCluster();
  for (const name of ['sick', 'a', 'b']) cluster.addNode(name, { zone: 'z' });
  pods(cluster);
  const seen = observe(cluster.cache, cluster.clock);
  cluster.start();
  await cluster.advance(MINUTE);
  cluster.partition('sick');
  const taintedAt = await cluster.advanceUntil(
    () => (seen.noExecuteAt.get('sick')?.length ?? 0) > 0,
    5 * MINUTE,
  );
  return { cluster, taintedAt, seen };
}

describe('taint-based eviction', () => {
  it('deletes a pod that does not tolerate the taint at once, and cancels when the pod comes to tolerate forever', async () => {
    const { cluster, taintedAt, seen } = await taintedCluster((c) => {
      c.addPod('intolerant', 'sick', { tolerations: [] });
      c.addPod('relaxed', 'sick', { tolerationSeconds: 600 });
    });
    await cluster.advance(SECOND);
    expect(seen.evictedAt.get('default/intolerant')).toBe(taintedAt);
    expect(cluster.core.eviction?.pendingEvictions().get('default/relaxed')).toBe(
      taintedAt + 600 * SECOND,
    );

    // Its owner lifts the limit (an allowed update of tolerationSeconds).
    const relaxed = cluster.cache.pod('default/relaxed');
    if (relaxed === undefined) throw new Error('pod relaxed is missing');
    cluster.cache.upsertPod({
      ...relaxed,
      metadata: { ...relaxed.metadata, resourceVersion: cluster.writer.nextVersion() },
      spec: { ...relaxed.spec, tolerations: nodeProblemTolerations(null) },
    });
    await cluster.advance(20 * MINUTE);
    expect(seen.evictedAt.has('default/relaxed')).toBe(false);
    expect(
      cluster.writer.events.filter(
        (e) => e.message === 'Cancelling deletion of Pod default/relaxed',
      ),
    ).toHaveLength(1);
    cluster.stop();
  });

  it('does not pass a countdown on to a new pod that took the name of the old one', async () => {
    const { cluster, taintedAt, seen } = await taintedCluster((c) => {
      c.addPod('web-0', 'sick', { tolerationSeconds: 120 });
      c.addPod('web-1', 'sick', { tolerationSeconds: 120 });
    });
    await cluster.advance(30 * SECOND);
    // The old pods are gone and new ones with their names exist (a re-list
    // delivers them as updates, the deletions unseen): one on a healthy node,
    // one back on the tainted node.
    cluster.addPod('web-0', 'a', { tolerationSeconds: 120 });
    const recreatedAt = cluster.clock.now();
    cluster.addPod('web-1', 'sick', { tolerationSeconds: 120 });
    await cluster.advance(10 * MINUTE);
    expect(seen.evictedAt.has('default/web-0')).toBe(false);
    expect(cluster.cache.pod('default/web-0')?.metadata.deletionTimestamp).toBeUndefined();
    // The new web-1 gets a countdown of its own, from when it was seen.
    expect(seen.evictedAt.get('default/web-1')).toBe(recreatedAt + 120 * SECOND);
    expect(recreatedAt + 120 * SECOND).toBeGreaterThan(taintedAt + 120 * SECOND);
    expect(cluster.backgroundErrors).toEqual([]);
    cluster.stop();
  });
});
