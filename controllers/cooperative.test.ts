import { describe, expect, it } from 'vitest';
import { findCondition } from './kube/objects.ts';
import { apiClusterPerTest } from './testing/api-cluster.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const ANNOTATION = 'edgebox.io/original-tolerations';

const newCluster = apiClusterPerTest();

interface PodView {
  metadata: { annotations?: Record<string, string> };
  spec: { tolerations?: Record<string, unknown>[] };
}

describe('cooperative mode', () => {
  it('cooperative mode rewrites and restores tolerations exactly', async () => {
    const c = await newCluster();
    c.addNode('edge', { zone: 'factory', annotations: { 'edgebox.io/autonomy-duration': '2h' } });
    c.addNode('plain', { zone: 'cloud' });
    const dedicated = { key: 'dedicated', operator: 'Equal', value: 'edge', effect: 'NoSchedule' };
    c.addPod('web', 'edge', { tolerations: [dedicated] }); // + the two 300 s defaults
    c.addPod('custom', 'edge', {
      tolerations: [
        {
          key: 'node.kubernetes.io/unreachable',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 60,
        },
        {
          key: 'node.kubernetes.io/not-ready',
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: 120,
        },
      ],
    });
    c.addPod('ds', 'edge', { ownerKind: 'DaemonSet', tolerationSeconds: 300 });
    c.addPod('static', 'edge', {
      annotations: { 'kubernetes.io/config.mirror': 'f00d' },
      tolerationSeconds: 300,
    });
    c.addPod('plain-web', 'plain');
    const before = new Map(
      ['web', 'custom', 'ds', 'static', 'plain-web'].map((n) => [
        n,
        c.pod(n) as unknown as PodView,
      ]),
    );
    const seconds = (name: string) =>
      ((c.pod(name) as unknown as PodView).spec.tolerations ?? [])
        .filter((t) => t.effect === 'NoExecute')
        .map((t) => `${String(t.key)}=${String(t.tolerationSeconds ?? 'forever')}`);

    const ecm = c.createEcm('ecm-coop', { mode: 'cooperative' });
    await c.startEcm(ecm);
    await c.advance(SECOND);

    // Autonomy 2h: each finite toleration grows by 7200 s; originals kept.
    expect(seconds('web')).toEqual([
      'node.kubernetes.io/not-ready=7500',
      'node.kubernetes.io/unreachable=7500',
    ]);
    expect(seconds('custom')).toEqual([
      'node.kubernetes.io/unreachable=7260',
      'node.kubernetes.io/not-ready=7320',
    ]);
    const web = c.pod('web') as unknown as PodView;
    expect(JSON.parse(web.metadata.annotations?.[ANNOTATION] ?? 'null')).toEqual(
      before.get('web')?.spec.tolerations,
    );
    expect(web.spec.tolerations?.[0]).toEqual(dedicated);
    // Left alone: DaemonSet and static pods, and pods of other nodes.
    for (const name of ['ds', 'static', 'plain-web']) {
      expect((c.pod(name) as unknown as PodView).spec.tolerations).toEqual(
        before.get(name)?.spec.tolerations,
      );
      expect(
        (c.pod(name) as unknown as PodView).metadata.annotations?.[ANNOTATION],
      ).toBeUndefined();
    }
    // A pod scheduled later is handled too.
    c.addPod('late', 'edge');
    await c.advance(SECOND);
    expect(seconds('late')).toEqual([
      'node.kubernetes.io/not-ready=7500',
      'node.kubernetes.io/unreachable=7500',
    ]);

    // No limit: the tolerations tolerate forever; originals unchanged (three more rewrites).
    c.annotateNode('edge', { 'edgebox.io/autonomy-duration': '0' });
    await c.advance(SECOND);
    expect(seconds('web')).toEqual([
      'node.kubernetes.io/not-ready=forever',
      'node.kubernetes.io/unreachable=forever',
    ]);
    expect(
      JSON.parse((c.pod('web') as unknown as PodView).metadata.annotations?.[ANNOTATION] ?? 'null'),
    ).toEqual(before.get('web')?.spec.tolerations);

    // EdgeAutonomy follows the Ready condition the stock controller writes.
    expect(findCondition(ecm.cache.node('edge')?.status.conditions, 'EdgeAutonomy')?.reason).toBe(
      'Autonomous',
    );
    const unknownAt = c.formatTime(c.clock.now());
    c.patchNodeConditions('edge', [
      {
        type: 'Ready',
        status: 'Unknown',
        reason: 'NodeStatusUnknown',
        lastTransitionTime: unknownAt,
      },
    ]);
    await c.advance(6 * SECOND);
    const offline = findCondition(ecm.cache.node('edge')?.status.conditions, 'EdgeAutonomy');
    expect(offline).toMatchObject({ status: 'True', reason: 'RunningOffline' });
    expect(offline?.message).toContain(`since ${unknownAt}`);

    // Autonomy removed: every rewritten pod is back exactly as it was.
    c.annotateNode('edge', { 'edgebox.io/autonomy-duration': null });
    await c.advance(6 * SECOND);
    for (const name of ['web', 'custom', 'ds', 'static', 'plain-web']) {
      const now = c.pod(name) as unknown as PodView;
      expect(now.spec.tolerations).toEqual(before.get(name)?.spec.tolerations);
      expect(now.metadata.annotations?.[ANNOTATION]).toBeUndefined();
    }
    expect(seconds('late')).toEqual([
      'node.kubernetes.io/not-ready=300',
      'node.kubernetes.io/unreachable=300',
    ]);
    expect(findCondition(ecm.cache.node('edge')?.status.conditions, 'EdgeAutonomy')?.reason).toBe(
      'AutonomyDisabled',
    );

    // Beside a stock node lifecycle controller, the ECM never marks nodes or taints them.
    c.partition('plain');
    await c.advance(10 * MINUTE);
    expect(findCondition(ecm.cache.node('plain')?.status.conditions, 'Ready')?.status).toBe('True');
    const nodeWrites = c.api.requests.filter(
      (r) =>
        r.userAgent === 'edgebox-ecm/ecm-coop' &&
        r.path.startsWith('/api/v1/nodes') &&
        r.method !== 'GET',
    );
    expect(nodeWrites.every((r) => r.path === '/api/v1/nodes/edge/status')).toBe(true);
    const metrics = await ecm.registry.metrics();
    expect(metrics).toContain('edgebox_ecm_toleration_rewrites_total{operation="protect"} 6');
    expect(metrics).toContain('edgebox_ecm_toleration_rewrites_total{operation="restore"} 3');
  });
});
