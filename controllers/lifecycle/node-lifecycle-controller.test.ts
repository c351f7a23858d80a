import { describe, expect, it } from 'vitest';
import { findCondition, type Node } from '../kube/objects.ts';
import { MemoryCluster } from '../testing/memory-cluster.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const EXCLUDE = 'node.kubernetes.io/exclude-disruption';

function taintKeys(cluster: MemoryCluster, name: string, effect: string): string[] {
  return (cluster.cache.node(name)?.spec.taints ?? [])
    .filter((t) => t.effect === effect)
    .map((t) => t.key)
    .sort();
}

function podReady(cluster: MemoryCluster, key: string): string | undefined {
  return findCondition(cluster.cache.pod(key)?.status.conditions, 'Ready')?.status;
}

function nodeReady(cluster: MemoryCluster, name: string): string | undefined {
  return findCondition(cluster.cache.node(name)?.status.conditions, 'Ready')?.status;
}

/** Fails the test run if a node ever carries both NoExecute taints of the pair. */
function watchNoExecutePair(cluster: MemoryCluster): { both: string[] } {
  const seen = { both: [] as string[] };
  const pair = (n: Node) =>
    (n.spec.taints ?? []).filter(
      (t) =>
        t.effect === 'NoExecute' &&
        (t.key === 'node.kubernetes.io/unreachable' || t.key === 'node.kubernetes.io/not-ready'),
    ).length;
  cluster.cache.addListener({
    nodeChanged: (_, next) => {
      if (next !== undefined && pair(next) > 1) seen.both.push(next.metadata.name);
    },
  });
  return seen;
}

describe('node lifecycle (standalone, in memory)', () => {
  it('keeps one NoExecute taint that mirrors Ready, swapped at once, and removes it when Ready returns', async () => {
    const cluster = new MemoryCluster();
    for (const name of ['sick', 'a', 'b']) cluster.addNode(name, { zone: 'z' });
    cluster.addPod('web', 'sick', { tolerationSeconds: 3600 });
    const pair = watchNoExecutePair(cluster);
    cluster.start();
    await cluster.advance(MINUTE);

    // The kubelet says it is not ready: not-ready NoSchedule at once, NoExecute from the queue.
    cluster.reconnect('sick', { Ready: 'False' });
    await cluster.advanceUntil(() => taintKeys(cluster, 'sick', 'NoExecute').length > 0, MINUTE);
    expect(taintKeys(cluster, 'sick', 'NoExecute')).toEqual(['node.kubernetes.io/not-ready']);
    expect(taintKeys(cluster, 'sick', 'NoSchedule')).toEqual(['node.kubernetes.io/not-ready']);
    // As upstream: pods are marked NotReady when the controller finds the node
    // silent (True -> Unknown), not when the kubelet itself reports False.
    expect(podReady(cluster, 'default/web')).toBe('True');

    // Then it goes silent: Unknown, and on the next pass the taint is swapped without queueing.
    cluster.partition('sick');
    const unknownAt = await cluster.advanceUntil(
      () => nodeReady(cluster, 'sick') === 'Unknown',
      2 * MINUTE,
    );
    const swappedAt = await cluster.advanceUntil(
      () => taintKeys(cluster, 'sick', 'NoExecute')[0] === 'node.kubernetes.io/unreachable',
      MINUTE,
    );
    expect(swappedAt - unknownAt).toBeLessThanOrEqual(5 * SECOND);
    expect(taintKeys(cluster, 'sick', 'NoExecute')).toEqual(['node.kubernetes.io/unreachable']);
    expect(taintKeys(cluster, 'sick', 'NoSchedule')).toEqual(['node.kubernetes.io/unreachable']);

    // Talking again, still not ready: swapped back.
    cluster.reconnect('sick', { Ready: 'False' });
    await cluster.advance(5 * SECOND);
    expect(taintKeys(cluster, 'sick', 'NoExecute')).toEqual(['node.kubernetes.io/not-ready']);

    // Ready: every taint of the pair goes.
    cluster.reconnect('sick');
    await cluster.advance(5 * SECOND);
    expect(cluster.cache.node('sick')?.spec.taints ?? []).toEqual([]);
    expect(pair.both).toEqual([]);
    // Taint changes are counted by key, effect and operation.
    const metrics = await cluster.registry.metrics();
    expect(metrics).toContain(
      'edgebox_ecm_taint_changes_total{key="node.kubernetes.io/not-ready",effect="NoExecute",operation="add"} 2',
    );
    expect(metrics).toContain(
      'edgebox_ecm_taint_changes_total{key="node.kubernetes.io/unreachable",effect="NoExecute",operation="remove"} 1',
    );
    expect(cluster.backgroundErrors).toEqual([]);
    cluster.stop();
  });

  it('puts NoSchedule taints for pressure conditions and cordoning, stamped, and takes them off again', async () => {
    const cluster = new MemoryCluster();
    cluster.addNode('n', { zone: 'z' });
    cluster.start();
    await cluster.advance(MINUTE);

    cluster.reconnect('n', { MemoryPressure: 'True', PIDPressure: 'True' });
    await cluster.advance(SECOND);
    expect(taintKeys(cluster, 'n', 'NoSchedule')).toEqual([
      'node.kubernetes.io/memory-pressure',
      'node.kubernetes.io/pid-pressure',
    ]);
    expect(cluster.cache.node('n')?.spec.taints?.every((t) => t.timeAdded !== undefined)).toBe(
      true,
    );
    const node = cluster.cache.node('n') as Node;
    cluster.cache.upsertNode({
      ...node,
      metadata: { ...node.metadata, resourceVersion: cluster.writer.nextVersion() },
      spec: { ...node.spec, unschedulable: true },
    });
    await cluster.advance(SECOND);
    expect(taintKeys(cluster, 'n', 'NoSchedule')).toContain('node.kubernetes.io/unschedulable');

    cluster.reconnect('n');
    await cluster.advance(SECOND);
    expect(taintKeys(cluster, 'n', 'NoSchedule')).toEqual(['node.kubernetes.io/unschedulable']);
    expect(taintKeys(cluster, 'n', 'NoExecute')).toEqual([]);
    cluster.stop();
  });

  it('gives a node that never posted status the startup grace, then marks it NodeStatusNeverUpdated', async () => {
    const cluster = new MemoryCluster();
    cluster.addNode('old', { zone: 'z' });
    const created = cluster.clock.now();
    cluster.addNode('new', { zone: 'z', readyAt: undefined });
    cluster.partition('new');
    cluster.start();
    const unknownAt = await cluster.advanceUntil(
      () => nodeReady(cluster, 'new') === 'Unknown',
      5 * MINUTE,
    );
    expect(unknownAt - created).toBeGreaterThan(60 * SECOND);
    expect(unknownAt - created).toBeLessThanOrEqual(65 * SECOND);
    expect(findCondition(cluster.cache.node('new')?.status.conditions, 'Ready')).toMatchObject({
      reason: 'NodeStatusNeverUpdated',
      message: 'Kubelet never posted node status.',
    });
    await cluster.advance(10 * SECOND);
    expect(taintKeys(cluster, 'new', 'NoExecute')).toEqual(['node.kubernetes.io/unreachable']);
    cluster.stop();
  });

  it('leaves nodes labelled exclude-disruption out of the zone state', async () => {
    // Counted, three of four down would make the small zone partially
    // disrupted (no tainting); left out, the zone is one Ready node: Normal.
    const cluster = new MemoryCluster();
    cluster.addNode('keeper', { zone: 'z' });
    for (let i = 0; i < 3; i++) {
      cluster.addNode(`spare-${i}`, { zone: 'z', labels: { [EXCLUDE]: '' } });
      cluster.addPod(`pod-${i}`, `spare-${i}`, { tolerationSeconds: 60 });
    }
    cluster.start();
    await cluster.advance(MINUTE);
    for (let i = 0; i < 3; i++) cluster.partition(`spare-${i}`);
    await cluster.advance(3 * MINUTE);
    expect(cluster.core.lifecycle?.zoneStateSnapshot().get('z')).toBe('Normal');
    expect(cluster.core.lifecycle?.zoneRateSnapshot().get('z')).toBe(0.1);
    for (let i = 0; i < 3; i++) {
      expect(taintKeys(cluster, `spare-${i}`, 'NoExecute')).toEqual([
        'node.kubernetes.io/unreachable',
      ]);
    }
    const metrics = await cluster.registry.metrics();
    expect(metrics).toContain('edgebox_ecm_zone_size{zone="z"} 1');
    expect(metrics).toContain('edgebox_ecm_zone_unhealthy_nodes{zone="z"} 0');
    expect(metrics).toContain('edgebox_ecm_nodes{state="unreachable"} 3');
    cluster.stop();
  });

  it('marks a pod bound to a node that is not Ready NotReady, retrying a failed write, but not on an autonomous node', async () => {
    const cluster = new MemoryCluster();
    cluster.addNode('plain', { zone: 'z' });
    cluster.addNode('edge', { zone: 'z', annotations: { 'edgebox.io/autonomy': 'true' } });
    cluster.addNode('healthy', { zone: 'z' });
    cluster.start();
    await cluster.advance(MINUTE);
    cluster.partition('plain');
    cluster.partition('edge');
    await cluster.advanceUntil(
      () => nodeReady(cluster, 'plain') === 'Unknown' && nodeReady(cluster, 'edge') === 'Unknown',
      2 * MINUTE,
    );

    // The API refuses the first status write for the newcomer.
    cluster.writer.failNext('pod-not-ready', 'default/late');
    cluster.addPod('late', 'plain', { tolerationSeconds: 3600 });
    cluster.addPod('late-edge', 'edge', { tolerationSeconds: 3600 });
    await cluster.advance(SECOND);
    expect(podReady(cluster, 'default/late')).toBe('False');
    expect(await cluster.registry.metrics()).toContain(
      'edgebox_ecm_write_errors_total{operation="pod_status"} 1',
    );
    expect(podReady(cluster, 'default/late-edge')).toBe('True');
    cluster.stop();
  });

  it('keeps the beta os and arch labels equal to the stable ones', async () => {
    const cluster = new MemoryCluster();
    cluster.addNode('arm', {
      labels: { 'kubernetes.io/arch': 'arm64', 'beta.kubernetes.io/os': 'windows' },
    });
    cluster.start();
    await cluster.advance(SECOND);
    expect(cluster.cache.node('arm')?.metadata.labels).toMatchObject({
      'kubernetes.io/arch': 'arm64',
      'beta.kubernetes.io/arch': 'arm64',
      'kubernetes.io/os': 'linux',
      'beta.kubernetes.io/os': 'linux',
    });
    cluster.stop();
  });
});
