import { describe, expect, it } from 'vitest';
import type { Pod, Toleration } from '../kube/objects.ts';
import { planTolerations, type TolerationPlan } from './toleration-plan.ts';

const ANNOTATION = 'edgebox.io/original-tolerations';
const HOUR = 3_600_000;
const NOT_READY = 'node.kubernetes.io/not-ready';
const UNREACHABLE = 'node.kubernetes.io/unreachable';

function noExecute(key: string, seconds?: number): Toleration {
  return {
    key,
    operator: 'Exists',
    effect: 'NoExecute',
    ...(seconds === undefined ? {} : { tolerationSeconds: seconds }),
  };
}

const dedicated: Toleration = {
  key: 'dedicated',
  operator: 'Equal',
  value: 'edge',
  effect: 'NoSchedule',
};
const defaults = [noExecute(NOT_READY, 300), noExecute(UNREACHABLE, 300)];

interface PodShape {
  tolerations?: Toleration[];
  annotations?: Record<string, string>;
  ownerKind?: string;
  deleting?: boolean;
  phase?: string;
}

function pod(shape: PodShape): Pod {
  return {
    metadata: {
      name: 'web',
      namespace: 'default',
      uid: 'uid-web',
      resourceVersion: '5',
      deletionTimestamp: shape.deleting === true ? '2025-01-01T00:00:00Z' : undefined,
      annotations: shape.annotations,
      ownerReferences: shape.ownerKind === undefined ? undefined : [{ kind: shape.ownerKind }],
    },
    spec: { nodeName: 'edge-1', tolerations: shape.tolerations },
    status: { phase: shape.phase ?? 'Running', conditions: undefined },
  };
}

/** The pod as it is after a plan was applied. */
function applied(before: Pod, plan: TolerationPlan): Pod {
  if (plan.kind !== 'rewrite') return before;
  const annotations = { ...before.metadata.annotations };
  if (plan.annotation === null) delete annotations[ANNOTATION];
  else annotations[ANNOTATION] = plan.annotation;
  return {
    ...before,
    metadata: { ...before.metadata, annotations },
    spec: { ...before.spec, tolerations: plan.tolerations },
  };
}

describe('cooperative toleration plan', () => {
  it('extends each finite not-ready/unreachable NoExecute toleration by the autonomy, keeping the originals', () => {
    const original = [dedicated, ...defaults];
    const plan = planTolerations(pod({ tolerations: original }), 2 * HOUR);
    expect(plan).toEqual({
      kind: 'rewrite',
      operation: 'protect',
      tolerations: [dedicated, noExecute(NOT_READY, 7500), noExecute(UNREACHABLE, 7500)],
      annotation: JSON.stringify(original),
    });
  });

  it('rounds a duration that is not whole seconds up', () => {
    const plan = planTolerations(pod({ tolerations: [noExecute(UNREACHABLE, 60)] }), 1500);
    expect(plan.kind === 'rewrite' && plan.tolerations).toEqual([noExecute(UNREACHABLE, 62)]);
  });

  it('removes the limit for autonomy without a time limit (0)', () => {
    const plan = planTolerations(pod({ tolerations: defaults }), 0);
    expect(plan.kind === 'rewrite' && plan.tolerations).toEqual([
      noExecute(NOT_READY),
      noExecute(UNREACHABLE),
    ]);
  });

  it('changes only tolerationSeconds, never adds or removes a toleration', () => {
    const mixed = [
      { operator: 'Exists' }, // tolerates everything forever: not touched
      noExecute(UNREACHABLE, 60),
      { key: NOT_READY, operator: 'Exists', effect: 'NoSchedule' },
      noExecute('example.com/maintenance', 30),
    ];
    const plan = planTolerations(pod({ tolerations: mixed }), HOUR);
    expect(plan.kind === 'rewrite' && plan.tolerations).toEqual([
      mixed[0],
      noExecute(UNREACHABLE, 3660),
      mixed[2],
      mixed[3],
    ]);
  });

  it('recomputes from the originals when the autonomy changes, and restores them exactly', () => {
    const original = [dedicated, noExecute(UNREACHABLE, 60), noExecute(NOT_READY, 120)];
    const start = pod({ tolerations: original });
    const twoHours = applied(start, planTolerations(start, 2 * HOUR));
    const oneHour = applied(twoHours, planTolerations(twoHours, HOUR));
    expect(oneHour.spec.tolerations).toEqual([
      dedicated,
      noExecute(UNREACHABLE, 3660),
      noExecute(NOT_READY, 3720),
    ]);
    const forever = applied(oneHour, planTolerations(oneHour, 0));
    expect(forever.metadata.annotations?.[ANNOTATION]).toBe(JSON.stringify(original));
    const restore = planTolerations(forever, undefined);
    expect(restore).toMatchObject({ kind: 'rewrite', operation: 'restore', annotation: null });
    const restored = applied(forever, restore);
    expect(restored.spec.tolerations).toEqual(original);
    expect(restored.metadata.annotations?.[ANNOTATION]).toBeUndefined();
    expect(planTolerations(restored, undefined)).toEqual({ kind: 'unchanged' });
  });

  it('keeps a toleration the user added meanwhile when restoring', () => {
    const start = pod({ tolerations: defaults });
    const extended = applied(start, planTolerations(start, HOUR));
    const added = noExecute('example.com/flaky', 10);
    const withMore = {
      ...extended,
      spec: { ...extended.spec, tolerations: [...(extended.spec.tolerations ?? []), added] },
    };
    const restored = applied(withMore, planTolerations(withMore, undefined));
    expect(restored.spec.tolerations).toEqual([...defaults, added]);
  });

  it('is unchanged when already as planned, and for pods that tolerate forever', () => {
    const start = pod({ tolerations: defaults });
    const extended = applied(start, planTolerations(start, HOUR));
    expect(planTolerations(extended, HOUR)).toEqual({ kind: 'unchanged' });
    // Nothing to extend and so no annotation to keep.
    const forever = pod({ tolerations: [noExecute(NOT_READY), noExecute(UNREACHABLE)] });
    expect(planTolerations(forever, HOUR)).toEqual({ kind: 'unchanged' });
    // Pods on ordinary nodes that were never rewritten.
    expect(planTolerations(start, undefined)).toEqual({ kind: 'unchanged' });
  });

  it.each<[string, PodShape, string]>([
    ['a DaemonSet pod', { ownerKind: 'DaemonSet', tolerations: defaults }, 'DaemonSet pod'],
    [
      'a static (mirror) pod',
      { annotations: { 'kubernetes.io/config.mirror': 'abc' }, tolerations: defaults },
      'static pod',
    ],
    ['a terminating pod', { deleting: true, tolerations: defaults }, 'terminating'],
    ['a succeeded pod', { phase: 'Succeeded', tolerations: defaults }, 'finished'],
    ['a failed pod', { phase: 'Failed', tolerations: defaults }, 'finished'],
    [
      'a pod without the NoExecute tolerations',
      { tolerations: [dedicated] },
      'no NoExecute not-ready/unreachable toleration to extend',
    ],
    [
      'a pod whose saved originals cannot be read',
      { tolerations: defaults, annotations: { [ANNOTATION]: '{not json' } },
      'annotation edgebox.io/original-tolerations is unreadable',
    ],
  ])('leaves %s alone', (_, shape, why) => {
    expect(planTolerations(pod(shape), HOUR)).toEqual({ kind: 'leave', why });
  });

  it('extends a pod owned by anything but a DaemonSet', () => {
    const plan = planTolerations(pod({ ownerKind: 'ReplicaSet', tolerations: defaults }), HOUR);
    expect(plan.kind).toBe('rewrite');
  });
});
