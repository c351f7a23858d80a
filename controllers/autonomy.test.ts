import { describe, expect, it } from 'vitest';
import { findCondition, type NodeCondition } from './kube/objects.ts';
import type { Ecm } from './ecm.ts';
import { apiClusterPerTest, type ApiCluster } from './testing/api-cluster.ts';
import { observe } from './testing/ecm-observer.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

const newCluster = apiClusterPerTest();

function condition(ecm: Ecm, node: string, type: string): NodeCondition | undefined {
  return findCondition(ecm.cache.node(node)?.status.conditions, type);
}

function noExecuteTaints(ecm: Ecm, node: string): string[] {
  return (ecm.cache.node(node)?.spec.taints ?? [])
    .filter((t) => t.effect === 'NoExecute')
    .map((t) => t.key);
}

async function startCluster(
  nodes: { name: string; zone: string; annotations?: Record<string, string> }[],
  pods: { name: string; node: string; tolerationSeconds?: number }[],
): Promise<{ c: ApiCluster; ecm: Ecm }> {
  const c = await newCluster();
  c.addNode('healthy', { zone: 'cloud' });
  for (const n of nodes) c.addNode(n.name, { zone: n.zone, annotations: n.annotations });
  for (const p of pods) {
    c.addPod(
      p.name,
      p.node,
      p.tolerationSeconds === undefined ? {} : { tolerationSeconds: p.tolerationSeconds },
    );
  }
  const ecm = c.createEcm('ecm-test', { mode: 'standalone' });
  await c.startEcm(ecm);
  await c.advance(MINUTE);
  return { c, ecm };
}

describe('autonomous nodes (standalone)', () => {
  it('a 24-hour partition of an autonomous node evicts nothing', { timeout: 240_000 }, async () => {
    const { c, ecm } = await startCluster(
      [{ name: 'edge', zone: 'factory', annotations: { 'edgebox.io/autonomy': 'true' } }],
      [
        { name: 'web', node: 'edge' },
        { name: 'quick', node: 'edge', tolerationSeconds: 30 },
      ],
    );
    expect(condition(ecm, 'edge', 'EdgeAutonomy')).toMatchObject({
      status: 'True',
      reason: 'Autonomous',
    });
    const seen = observe(ecm.cache, c.clock);

    c.partition('edge');
    const offlineAt = await c.advanceUntil(
      () => condition(ecm, 'edge', 'Ready')?.status === 'Unknown',
      5 * MINUTE,
    );
    await c.advance(5 * SECOND);
    // The truth is told: unreachable, NoSchedule taint, EdgeAutonomy RunningOffline.
    expect(ecm.cache.node('edge')?.spec.taints?.map((t) => `${t.key}:${t.effect}`)).toEqual([
      'node.kubernetes.io/unreachable:NoSchedule',
    ]);
    const running = condition(ecm, 'edge', 'EdgeAutonomy');
    expect(running).toMatchObject({ status: 'True', reason: 'RunningOffline' });
    expect(running?.message).toContain(`since ${c.formatTime(offlineAt)}`);
    expect(running?.message).toContain('no time limit');

    await c.advance(24 * HOUR);
    expect(condition(ecm, 'edge', 'Ready')?.status).toBe('Unknown');
    expect(seen.evictedAt.size).toBe(0);
    expect(seen.notReadyAt.size).toBe(0);
    expect(seen.noExecuteAt.size).toBe(0);
    for (const name of ['web', 'quick']) {
      const pod = c.pod(name) as { metadata: { deletionTimestamp?: string } };
      expect(pod.metadata.deletionTimestamp).toBeUndefined();
    }
    expect(await ecm.registry.metrics()).toContain('edgebox_ecm_nodes{state="running_offline"} 1');

    // The link comes back: Ready again, taint gone, pods never touched.
    c.reconnect('edge');
    await c.advance(10 * SECOND);
    expect(condition(ecm, 'edge', 'Ready')?.status).toBe('True');
    expect(ecm.cache.node('edge')?.spec.taints ?? []).toEqual([]);
    expect(condition(ecm, 'edge', 'EdgeAutonomy')).toMatchObject({
      status: 'True',
      reason: 'Autonomous',
    });
    expect(seen.evictedAt.size).toBe(0);
  });

  it('a node with autonomy-duration 1h has its pods evicted just after 1h plus their toleration', async () => {
    const { c, ecm } = await startCluster(
      [
        { name: 'edge', zone: 'factory', annotations: { 'edgebox.io/autonomy-duration': '1h' } },
        // OpenYurt's annotation means the same.
        {
          name: 'yurt',
          zone: 'plant',
          annotations: { 'node.openyurt.io/autonomy-duration': '1h' },
        },
      ],
      [
        { name: 'web', node: 'edge' },
        { name: 'quick', node: 'edge', tolerationSeconds: 30 },
        { name: 'yurt-web', node: 'yurt' },
      ],
    );
    const seen = observe(ecm.cache, c.clock);
    c.partition('edge');
    c.partition('yurt');
    const offlineAt = await c.advanceUntil(
      () => condition(ecm, 'edge', 'Ready')?.status === 'Unknown',
      5 * MINUTE,
    );
    await c.advance(10 * SECOND);
    expect(condition(ecm, 'edge', 'EdgeAutonomy')?.message).toContain(
      `until ${c.formatTime(offlineAt + HOUR)}`,
    );
    expect(condition(ecm, 'yurt', 'EdgeAutonomy')?.reason).toBe('RunningOffline');

    // Within the hour: nothing happens to the pods.
    await c.advance(HOUR - 20 * SECOND);
    expect(seen.noExecuteAt.size).toBe(0);
    expect(seen.notReadyAt.size).toBe(0);

    // Then they are handled as upstream would: NotReady, NoExecute, evicted after their toleration.
    await c.advanceUntil(
      () => seen.evictedAt.has('default/web') && seen.evictedAt.has('default/yurt-web'),
      HOUR,
    );
    const expired = condition(ecm, 'edge', 'EdgeAutonomy');
    expect(expired).toMatchObject({ status: 'False', reason: 'AutonomyExpired' });
    expect(expired?.message).toContain(`ran out at ${c.formatTime(offlineAt + HOUR)}`);
    const tainted = seen.noExecuteAt.get('edge')?.[0] as number;
    expect(tainted - (offlineAt + HOUR)).toBeGreaterThanOrEqual(0);
    expect(tainted - (offlineAt + HOUR)).toBeLessThanOrEqual(10 * SECOND);
    expect(seen.notReadyAt.get('default/web')).toBeGreaterThanOrEqual(offlineAt + HOUR);
    expect(seen.evictedAt.get('default/quick')).toBe(tainted + 30 * SECOND);
    expect(seen.evictedAt.get('default/web')).toBe(tainted + 300 * SECOND);
    const web = seen.evictedAt.get('default/web') as number;
    expect(web - offlineAt).toBeGreaterThanOrEqual(HOUR + 300 * SECOND);
    expect(web - offlineAt).toBeLessThanOrEqual(HOUR + 310 * SECOND);
    const yurtWeb = seen.evictedAt.get('default/yurt-web') as number;
    expect(yurtWeb - offlineAt).toBeGreaterThanOrEqual(HOUR + 300 * SECOND);
    expect(yurtWeb - offlineAt).toBeLessThanOrEqual(HOUR + 310 * SECOND);
  });

  it('removing the annotation while offline starts normal handling', async () => {
    const { c, ecm } = await startCluster(
      [
        { name: 'edge', zone: 'factory', annotations: { 'edgebox.io/autonomy': 'true' } },
        // Not a Go duration: an Event says so and the node is treated as not autonomous.
        { name: 'typo', zone: 'plant', annotations: { 'edgebox.io/autonomy-duration': '1 hour' } },
      ],
      [
        { name: 'web', node: 'edge' },
        { name: 'typo-web', node: 'typo' },
      ],
    );
    const seen = observe(ecm.cache, c.clock);
    const invalid = c.events('default').filter((e) => e.reason === 'InvalidAutonomyAnnotation');
    expect(invalid).toHaveLength(1);
    expect(invalid[0]?.type).toBe('Warning');
    expect(invalid[0]?.message).toContain('edgebox.io/autonomy-duration="1 hour"');
    expect((invalid[0]?.involvedObject as { kind: string; name: string }).name).toBe('typo');
    expect(condition(ecm, 'typo', 'EdgeAutonomy')).toBeUndefined();

    c.partition('edge');
    c.partition('typo');
    const offlineAt = await c.advanceUntil(
      () => condition(ecm, 'edge', 'Ready')?.status === 'Unknown',
      5 * MINUTE,
    );
    // The node with the bad value is handled as any other: evicted after 300 s.
    await c.advanceUntil(() => seen.evictedAt.has('default/typo-web'), 10 * MINUTE);
    expect((seen.evictedAt.get('default/typo-web') as number) - offlineAt).toBeLessThanOrEqual(
      320 * SECOND,
    );
    await c.advance(2 * HOUR);
    expect(seen.evictedAt.has('default/web')).toBe(false);
    expect(noExecuteTaints(ecm, 'edge')).toEqual([]);

    const removedAt = c.clock.now();
    c.annotateNode('edge', { 'edgebox.io/autonomy': null });
    await c.advanceUntil(() => seen.evictedAt.has('default/web'), 10 * MINUTE);
    const tainted = seen.noExecuteAt.get('edge')?.[0] as number;
    expect(tainted - removedAt).toBeLessThanOrEqual(5 * SECOND + 100);
    expect(seen.notReadyAt.get('default/web')).toBeLessThanOrEqual(tainted);
    expect(seen.evictedAt.get('default/web')).toBe(tainted + 300 * SECOND);
    expect(condition(ecm, 'edge', 'EdgeAutonomy')).toMatchObject({
      status: 'False',
      reason: 'AutonomyDisabled',
    });
  });
});
