import { describe, expect, it } from 'vitest';
import type { Ecm } from './ecm.ts';
import { findCondition } from './kube/objects.ts';
import { apiClusterPerTest, type ApiCluster } from './testing/api-cluster.ts';
import { nodeProblemTolerations } from './testing/cluster-objects.ts';
import { observe } from './testing/ecm-observer.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;

const newCluster = apiClusterPerTest();

async function clusterWithPlainNode(): Promise<{ c: ApiCluster; ecm: Ecm }> {
  const c = await newCluster();
  c.addNode('plain', { zone: 'a' });
  c.addNode('healthy', { zone: 'b' });
  const ecm = c.createEcm('ecm-test', { mode: 'standalone' });
  return { c, ecm };
}

describe('taint-based eviction of a plain node (standalone)', () => {
  it("a plain node's pods are evicted at their tolerationSeconds", async () => {
    const { c, ecm } = await clusterWithPlainNode();
    c.addPod('t30', 'plain', { tolerationSeconds: 30 });
    c.addPod('t300', 'plain'); // DefaultTolerationSeconds admission: 300 s
    // The first toleration matching the unreachable taint decides: 120 s.
    c.addPod('mixed', 'plain', {
      tolerations: [
        {
          key: 'node.kubernetes.io/not-ready',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 10,
        },
        {
          key: 'node.kubernetes.io/unreachable',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 120,
        },
      ],
    });
    c.addPod('elsewhere', 'healthy', { tolerationSeconds: 30 });
    const seen = observe(ecm.cache, c.clock);
    await c.startEcm(ecm);
    await c.advance(MINUTE);

    const lastHeartbeat = c.clock.now();
    c.partition('plain');
    const unknownAt = await c.advanceUntil(
      () =>
        findCondition(ecm.cache.node('plain')?.status.conditions, 'Ready')?.status === 'Unknown',
      5 * MINUTE,
    );
    // Grace period 50 s, checked every 5 s.
    expect(unknownAt - lastHeartbeat).toBeGreaterThan(50 * SECOND);
    expect(unknownAt - lastHeartbeat).toBeLessThanOrEqual(60 * SECOND);
    const node = c.node('plain') as {
      status: { conditions: { type: string; status: string; reason: string; message: string }[] };
    };
    for (const type of ['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure']) {
      expect(node.status.conditions.find((x) => x.type === type)).toMatchObject({
        status: 'Unknown',
        reason: 'NodeStatusUnknown',
        message: 'Kubelet stopped posting node status.',
      });
    }

    await c.advanceUntil(() => seen.evictedAt.has('default/t300'), 10 * MINUTE);
    const tainted = seen.noExecuteAt.get('plain') ?? [];
    expect(tainted).toHaveLength(1);
    const taintTime = tainted[0] as number;
    // Tainted on the pass after the node went Unknown (one monitor period later).
    expect(taintTime - unknownAt).toBeLessThanOrEqual(5 * SECOND + 100);
    expect(seen.evictedAt.get('default/t30')).toBe(taintTime + 30 * SECOND);
    expect(seen.evictedAt.get('default/mixed')).toBe(taintTime + 120 * SECOND);
    expect(seen.evictedAt.get('default/t300')).toBe(taintTime + 300 * SECOND);
    expect(seen.evictedAt.has('default/elsewhere')).toBe(false);

    // What the API shows: NoSchedule and NoExecute unreachable taints, pods
    // marked NotReady when the node left Ready, DisruptionTarget before deletion.
    const taints = (
      c.node('plain').spec as { taints: { key: string; effect: string; timeAdded?: string }[] }
    ).taints;
    expect(taints.map((t) => `${t.key}:${t.effect}`).sort()).toEqual([
      'node.kubernetes.io/unreachable:NoExecute',
      'node.kubernetes.io/unreachable:NoSchedule',
    ]);
    expect(taints.find((t) => t.effect === 'NoExecute')?.timeAdded).toBe(c.formatTime(taintTime));
    const pod = c.pod('t300') as {
      status: { conditions: { type: string; status: string; reason?: string }[] };
    };
    expect(pod.status.conditions.find((x) => x.type === 'Ready')?.status).toBe('False');
    expect(seen.notReadyAt.get('default/t300')).toBe(unknownAt);
    expect(pod.status.conditions.find((x) => x.type === 'DisruptionTarget')).toMatchObject({
      status: 'True',
      reason: 'DeletionByTaintManager',
    });
    const podEvents = c.events('default').map((e) => `${String(e.reason)}: ${String(e.message)}`);
    expect(podEvents).toContain('NodeNotReady: Node is not ready');
    expect(podEvents).toContain('TaintManagerEviction: Marking for deletion Pod default/t300');
    expect(podEvents).toContain('NodeNotReady: Node plain status is now: NodeNotReady');
    expect(await ecm.registry.metrics()).toContain('edgebox_ecm_pod_evictions_total 3');
  });

  it('a pod tolerating forever is never evicted', async () => {
    const { c, ecm } = await clusterWithPlainNode();
    c.addPod('forever', 'plain', { tolerations: nodeProblemTolerations(null) });
    // Tolerating everything (no key, Exists) is forever too.
    c.addPod('everything', 'plain', { tolerations: [{ operator: 'Exists' }] });
    c.addPod('bounded', 'plain', { tolerationSeconds: 60 });
    const seen = observe(ecm.cache, c.clock);
    await c.startEcm(ecm);
    await c.advance(MINUTE);
    c.partition('plain');
    await c.advanceUntil(() => seen.evictedAt.has('default/bounded'), 10 * MINUTE);
    await c.advance(6 * 60 * MINUTE);
    expect(seen.noExecuteAt.get('plain')).toHaveLength(1);
    expect([...seen.evictedAt.keys()]).toEqual(['default/bounded']);
    for (const name of ['forever', 'everything']) {
      const pod = c.pod(name) as { metadata: { deletionTimestamp?: string } };
      expect(pod.metadata.deletionTimestamp).toBeUndefined();
    }
    expect(ecm.controllers?.eviction?.pendingEvictions().size).toBe(0);
  });
});
