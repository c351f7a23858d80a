import { describe, expect, it } from 'vitest';
import type { Lease, Node, NodeCondition } from '../kube/objects.ts';
import { formatMicroTime, formatTime } from '../kube/objects.ts';
import {
  MESSAGE_NEVER_UPDATED,
  MESSAGE_STATUS_UNKNOWN,
  REASON_NEVER_UPDATED,
  REASON_STATUS_UNKNOWN,
  decideNodeHealth,
  type HealthDecision,
  type NodeHealth,
} from './node-health.ts';

const T0 = Date.UTC(2025, 0, 1);
const SECOND = 1000;
const GRACE = { monitorGraceMs: 50 * SECOND, startupGraceMs: 60 * SECOND };
/** The conditions upstream sets Unknown, in its order; NetworkUnavailable is not among them. */
const SET_UNKNOWN = ['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure'];

/** The conditions a kubelet posts: Ready True and no pressure, heartbeat and transition as given. */
function kubeletConditions(heartbeat: number, transition = heartbeat): NodeCondition[] {
  const c = (type: string, status: string): NodeCondition => ({
    type,
    status,
    reason: `Kubelet${type}`,
    message: `kubelet says ${type}=${status}`,
    lastHeartbeatTime: formatTime(heartbeat),
    lastTransitionTime: formatTime(transition),
  });
  return [
    c('MemoryPressure', 'False'),
    c('DiskPressure', 'False'),
    c('PIDPressure', 'False'),
    c('NetworkUnavailable', 'False'),
    c('Ready', 'True'),
  ];
}

function node(conditions: NodeCondition[] | undefined, created = T0 - 3_600_000): Node {
  return {
    metadata: {
      name: 'edge-1',
      uid: 'uid-edge-1',
      resourceVersion: '7',
      creationTimestamp: formatTime(created),
    },
    spec: {},
    status: conditions === undefined ? {} : { conditions },
  };
}

function lease(renewAt: number): Lease {
  return {
    metadata: { name: 'edge-1', namespace: 'kube-node-lease', uid: 'l', resourceVersion: '1' },
    spec: {
      holderIdentity: 'edge-1',
      leaseDurationSeconds: 40,
      renewTime: formatMicroTime(renewAt),
    },
  };
}

interface Step {
  at: number;
  node: Node;
  lease?: Lease;
}

/**
 * Runs the monitor's decision over successive passes, carrying the remembered
 * health forward as the controller does (the written health when it wrote).
 */
function run(steps: Step[]): HealthDecision[] {
  let saved: NodeHealth | undefined;
  const out: HealthDecision[] = [];
  for (const s of steps) {
    const d = decideNodeHealth(s.node, s.lease, saved, s.at, GRACE);
    saved = d.update?.healthAfterWrite ?? d.health;
    out.push(d);
  }
  return out;
}

/** Index of the first pass that set the conditions Unknown, or -1. */
function firstUpdate(decisions: HealthDecision[]): number {
  return decisions.findIndex((d) => d.update !== undefined);
}

describe('decideNodeHealth (upstream tryUpdateNodeHealth)', () => {
  it('gives a node seen for the first time a whole grace period, however old its heartbeat', () => {
    const stale = node(kubeletConditions(T0 - 3_600_000));
    const [first, early, late] = run([
      { at: T0, node: stale },
      { at: T0 + 50 * SECOND, node: stale },
      { at: T0 + 50 * SECOND + 1, node: stale },
    ]);
    expect(first?.update).toBeUndefined();
    expect(first?.health.probeTimestamp).toBe(T0);
    // The grace period must be over, not just reached (time.After).
    expect(early?.update).toBeUndefined();
    expect(late?.update).toBeDefined();
  });

  it.each([
    {
      name: 'a new Ready lastHeartbeatTime (status posted, no Lease)',
      renewed: (at: number): Step => ({ at, node: node(kubeletConditions(at, T0)) }),
    },
    {
      name: 'an advanced Lease renewTime (heartbeat unchanged)',
      renewed: (at: number): Step => ({ at, node: node(kubeletConditions(T0)), lease: lease(at) }),
    },
  ])('advances the probe time on $name', ({ renewed }) => {
    const quiet = (at: number, previous: Step): Step => ({ ...previous, at });
    const start = renewed(T0);
    const heartbeat = renewed(T0 + 40 * SECOND);
    const decisions = run([
      start,
      quiet(T0 + 20 * SECOND, start),
      heartbeat,
      quiet(T0 + 90 * SECOND, heartbeat),
      quiet(T0 + 90 * SECOND + 1, heartbeat),
    ]);
    expect(decisions[2]?.health.probeTimestamp).toBe(T0 + 40 * SECOND);
    // 50 s after the heartbeat at 40 s, not 50 s after the start.
    expect(firstUpdate(decisions)).toBe(4);
  });

  it('does not take an unchanged or older Lease renewTime as a heartbeat', () => {
    const conditions = kubeletConditions(T0);
    const decisions = run([
      { at: T0, node: node(conditions), lease: lease(T0) },
      { at: T0 + 30 * SECOND, node: node(conditions), lease: lease(T0) },
      { at: T0 + 40 * SECOND, node: node(conditions), lease: lease(T0 - 10 * SECOND) },
      { at: T0 + 50 * SECOND + 1, node: node(conditions), lease: lease(T0) },
    ]);
    expect(decisions.map((d) => d.health.probeTimestamp)).toEqual([T0, T0, T0, T0]);
    expect(firstUpdate(decisions)).toBe(3);
  });

  it('sets Ready and the pressure conditions Unknown with NodeStatusUnknown, as upstream writes them', () => {
    const posted = kubeletConditions(T0 - 10 * SECOND, T0 - 3_600_000);
    const at = T0 + 51_500;
    const [, silent] = run([
      { at: T0, node: node(posted) },
      { at, node: node(posted) },
    ]);
    const update = silent?.update;
    expect(update?.conditions.map((c) => c.type)).toEqual(SET_UNKNOWN);
    for (const c of update?.conditions ?? []) {
      expect(c).toMatchObject({
        status: 'Unknown',
        reason: REASON_STATUS_UNKNOWN,
        message: MESSAGE_STATUS_UNKNOWN,
        lastTransitionTime: formatTime(at),
        // The heartbeat stays what the kubelet last posted.
        lastHeartbeatTime: formatTime(T0 - 10 * SECOND),
      });
    }
    expect(REASON_STATUS_UNKNOWN).toBe('NodeStatusUnknown');
    expect(MESSAGE_STATUS_UNKNOWN).toBe('Kubelet stopped posting node status.');
    // NetworkUnavailable belongs to the network plugin and is left alone.
    expect(update?.conditions.some((c) => c.type === 'NetworkUnavailable')).toBe(false);
    expect(silent?.observedReady.status).toBe('True');
    expect(silent?.currentReady?.status).toBe('Unknown');
    expect(update?.healthAfterWrite.readyTransitionTimestamp).toBe(at);
    expect(update?.healthAfterWrite.probeTimestamp).toBe(T0);
  });

  it('writes nothing more once the conditions are Unknown', () => {
    const posted = kubeletConditions(T0 - 10 * SECOND);
    const first = run([
      { at: T0, node: node(posted) },
      { at: T0 + 51 * SECOND, node: node(posted) },
    ])[1] as HealthDecision;
    const written = first.update?.conditions ?? [];
    const after = posted.map((c) => written.find((w) => w.type === c.type) ?? c);
    const next = decideNodeHealth(
      node(after),
      undefined,
      first.update?.healthAfterWrite,
      T0 + 56 * SECOND,
      GRACE,
    );
    expect(next.update).toBeUndefined();
    expect(next.observedReady.status).toBe('Unknown');
    expect(next.currentReady?.status).toBe('Unknown');
  });

  it('changes only the conditions that are not Unknown yet', () => {
    const posted = kubeletConditions(T0).map((c) =>
      c.type === 'DiskPressure' ? { ...c, status: 'Unknown' } : c,
    );
    const [, silent] = run([
      { at: T0, node: node(posted) },
      { at: T0 + 51 * SECOND, node: node(posted) },
    ]);
    expect(silent?.update?.conditions.map((c) => c.type)).toEqual([
      'Ready',
      'MemoryPressure',
      'PIDPressure',
    ]);
  });

  it('gives a node that never posted Ready the startup grace period, counted from its creation', () => {
    const created = T0;
    const fresh = node(undefined, created);
    const decisions = run([
      { at: created + 30 * SECOND, node: fresh },
      { at: created + 55 * SECOND, node: fresh },
      { at: created + 60 * SECOND, node: fresh },
      { at: created + 60 * SECOND + 1, node: fresh },
    ]);
    // Not 50 s (the monitor grace), and not 60 s after it was first seen.
    expect(firstUpdate(decisions)).toBe(3);
    const update = decisions[3]?.update;
    expect(update?.conditions.map((c) => c.type)).toEqual(SET_UNKNOWN);
    for (const c of update?.conditions ?? []) {
      expect(c).toEqual({
        type: c.type,
        status: 'Unknown',
        reason: REASON_NEVER_UPDATED,
        message: MESSAGE_NEVER_UPDATED,
        lastHeartbeatTime: formatTime(created),
        lastTransitionTime: formatTime(created + 60 * SECOND + 1),
      });
    }
    expect(MESSAGE_NEVER_UPDATED).toBe('Kubelet never posted node status.');
    // Ready as it is taken to have been: Unknown since creation.
    expect(decisions[3]?.observedReady).toMatchObject({
      status: 'Unknown',
      lastTransitionTime: formatTime(created),
    });
  });

  it('keeps a node that never posted Ready alive while its Lease is renewed', () => {
    const fresh = node(undefined, T0);
    const decisions = run([
      { at: T0 + 10 * SECOND, node: fresh, lease: lease(T0 + 10 * SECOND) },
      { at: T0 + 50 * SECOND, node: fresh, lease: lease(T0 + 50 * SECOND) },
      { at: T0 + 100 * SECOND, node: fresh, lease: lease(T0 + 50 * SECOND) },
      { at: T0 + 110 * SECOND + 1, node: fresh, lease: lease(T0 + 50 * SECOND) },
    ]);
    expect(decisions[1]?.currentReady).toBeUndefined();
    expect(firstUpdate(decisions)).toBe(3);
  });

  it('moves the ready transition time only when Ready transitioned', () => {
    const decisions = run([
      { at: T0, node: node(kubeletConditions(T0, T0 - 100 * SECOND)) },
      { at: T0 + 10 * SECOND, node: node(kubeletConditions(T0 + 10 * SECOND, T0 - 100 * SECOND)) },
      { at: T0 + 20 * SECOND, node: node(kubeletConditions(T0 + 20 * SECOND, T0 + 15 * SECOND)) },
    ]);
    expect(decisions.map((d) => d.health.readyTransitionTimestamp)).toEqual([
      T0,
      T0,
      T0 + 20 * SECOND,
    ]);
    expect(decisions[2]?.health.savedReady?.lastHeartbeatTime).toBe(formatTime(T0 + 20 * SECOND));
  });
});
