import { describe, expect, it } from 'vitest';
import type { Node, NodeCondition, Taint, Toleration } from '../kube/objects.ts';
import {
  NOT_READY_NO_EXECUTE,
  UNREACHABLE_NO_EXECUTE,
  applyTaintChange,
  matchingTolerations,
  minTolerationMs,
  noScheduleTaintDiff,
  toleratesTaint,
} from './taints.ts';

function nodeWith(
  conditions: Record<string, string>,
  taints: Taint[] = [],
  unschedulable = false,
): Node {
  return {
    metadata: { name: 'n', uid: 'u', resourceVersion: '1' },
    spec: { taints, ...(unschedulable ? { unschedulable } : {}) },
    status: {
      conditions: Object.entries(conditions).map(([type, status]): NodeCondition => ({
        type,
        status,
      })),
    },
  };
}

const keys = (taints: Taint[]): string[] => taints.map((t) => `${t.key}:${t.effect}`).sort();

describe('NoSchedule taints from conditions (doNoScheduleTaintingPass)', () => {
  it.each(
    (
      [
        { conditions: { Ready: 'True' }, add: [] },
        { conditions: { Ready: 'False' }, add: ['node.kubernetes.io/not-ready:NoSchedule'] },
        { conditions: { Ready: 'Unknown' }, add: ['node.kubernetes.io/unreachable:NoSchedule'] },
        {
          conditions: { Ready: 'True', MemoryPressure: 'True' },
          add: ['node.kubernetes.io/memory-pressure:NoSchedule'],
        },
        {
          conditions: { Ready: 'True', DiskPressure: 'True', PIDPressure: 'True' },
          add: [
            'node.kubernetes.io/disk-pressure:NoSchedule',
            'node.kubernetes.io/pid-pressure:NoSchedule',
          ],
        },
        {
          conditions: { Ready: 'True', NetworkUnavailable: 'True' },
          add: ['node.kubernetes.io/network-unavailable:NoSchedule'],
        },
        // Unknown pressure (set by the monitor) earns no pressure taint.
        {
          conditions: { Ready: 'Unknown', MemoryPressure: 'Unknown' },
          add: ['node.kubernetes.io/unreachable:NoSchedule'],
        },
        { conditions: { Ready: 'True', MemoryPressure: 'False', EdgeAutonomy: 'True' }, add: [] },
      ] as { conditions: Record<string, string>; add: string[] }[]
    ).map((row) => ({
      ...row,
      name: Object.entries(row.conditions)
        .map(([type, status]) => `${type}=${status}`)
        .join(' '),
      taints: row.add.join(' ') || 'none',
    })),
  )('$name -> $taints', ({ conditions, add }) => {
    const diff = noScheduleTaintDiff(nodeWith(conditions));
    expect(keys(diff.add)).toEqual([...add].sort());
    expect(diff.remove).toEqual([]);
    // Taints are added bare: key and effect, stamped when written.
    for (const t of diff.add) expect(Object.keys(t).sort()).toEqual(['effect', 'key']);
  });

  it('adds the unschedulable taint for spec.unschedulable', () => {
    const diff = noScheduleTaintDiff(nodeWith({ Ready: 'True' }, [], true));
    expect(keys(diff.add)).toEqual(['node.kubernetes.io/unschedulable:NoSchedule']);
  });

  it('swaps not-ready for unreachable and removes what no condition asks for, leaving other taints alone', () => {
    const present: Taint[] = [
      {
        key: 'node.kubernetes.io/not-ready',
        effect: 'NoSchedule',
        timeAdded: '2025-01-01T00:00:00Z',
      },
      { key: 'node.kubernetes.io/memory-pressure', effect: 'NoSchedule' },
      { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' },
      // Not ours: someone else's NoSchedule taint, and the NoExecute pair.
      { key: 'dedicated', value: 'edge', effect: 'NoSchedule' },
      { key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' },
      { key: 'node.kubernetes.io/unreachable', effect: 'PreferNoSchedule' },
    ];
    const diff = noScheduleTaintDiff(
      nodeWith({ Ready: 'Unknown', MemoryPressure: 'Unknown' }, present),
    );
    expect(keys(diff.add)).toEqual(['node.kubernetes.io/unreachable:NoSchedule']);
    expect(keys(diff.remove)).toEqual([
      'node.kubernetes.io/memory-pressure:NoSchedule',
      'node.kubernetes.io/not-ready:NoSchedule',
      'node.kubernetes.io/unschedulable:NoSchedule',
    ]);
  });

  it('removes both unreachable and not-ready NoSchedule taints when Ready returns', () => {
    const diff = noScheduleTaintDiff(
      nodeWith({ Ready: 'True' }, [
        { key: 'node.kubernetes.io/unreachable', effect: 'NoSchedule' },
        { key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' },
      ]),
    );
    expect(diff.add).toEqual([]);
    expect(keys(diff.remove)).toEqual([
      'node.kubernetes.io/not-ready:NoSchedule',
      'node.kubernetes.io/unreachable:NoSchedule',
    ]);
  });
});

describe('applyTaintChange (AddOrUpdateTaint / RemoveTaint)', () => {
  const other: Taint = { key: 'dedicated', value: 'edge', effect: 'NoSchedule' };
  const unreachable: Taint = { ...UNREACHABLE_NO_EXECUTE, timeAdded: '2025-01-01T00:00:00Z' };

  it('swaps the NoExecute pair so only one is present, keeping the order of the rest', () => {
    const notReady = { ...NOT_READY_NO_EXECUTE, timeAdded: '2025-01-01T00:01:00Z' };
    expect(applyTaintChange([other, unreachable], [notReady], [UNREACHABLE_NO_EXECUTE])).toEqual([
      other,
      notReady,
    ]);
  });

  it('replaces a taint with the same key and effect in place when its value or time differs', () => {
    const restamped = { ...unreachable, timeAdded: '2025-01-01T00:05:00Z' };
    expect(applyTaintChange([unreachable, other], [restamped], [])).toEqual([restamped, other]);
  });

  it('returns undefined when nothing changes', () => {
    expect(applyTaintChange([unreachable], [unreachable], [NOT_READY_NO_EXECUTE])).toBeUndefined();
    expect(applyTaintChange([], [], [UNREACHABLE_NO_EXECUTE])).toBeUndefined();
  });

  it('removes by key and effect only', () => {
    const noSchedule: Taint = { key: unreachable.key, effect: 'NoSchedule' };
    expect(applyTaintChange([unreachable, noSchedule], [], [UNREACHABLE_NO_EXECUTE])).toEqual([
      noSchedule,
    ]);
  });
});

describe('tolerations (Toleration.ToleratesTaint, GetMatchingTolerations, getMinTolerationTime)', () => {
  const unreachable: Taint = UNREACHABLE_NO_EXECUTE;

  it.each<[Toleration, boolean]>([
    [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' }, true],
    [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists' }, true], // any effect
    [{ operator: 'Exists' }, true], // any key, any effect
    [{ operator: 'Exists', effect: 'NoSchedule' }, false],
    [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' }, false],
    [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' }, true], // Equal, both values empty
    [
      { key: 'node.kubernetes.io/unreachable', operator: 'Equal', value: 'x', effect: 'NoExecute' },
      false,
    ],
    [{ key: 'node.kubernetes.io/unreachable', operator: 'Lt', effect: 'NoExecute' }, false],
  ])('%j tolerates unreachable:NoExecute: %s', (toleration, expected) => {
    expect(toleratesTaint(toleration, unreachable)).toBe(expected);
  });

  it('uses the first toleration that matches each taint, not the shortest one', () => {
    const wildcard: Toleration = {
      operator: 'Exists',
      effect: 'NoExecute',
      tolerationSeconds: 600,
    };
    const specific: Toleration = {
      key: 'node.kubernetes.io/unreachable',
      operator: 'Exists',
      effect: 'NoExecute',
      tolerationSeconds: 30,
    };
    expect(matchingTolerations([unreachable], [wildcard, specific])).toEqual({
      allTolerated: true,
      used: [wildcard],
    });
    const both = matchingTolerations([unreachable, NOT_READY_NO_EXECUTE], [specific, wildcard]);
    expect(both).toEqual({ allTolerated: true, used: [specific, wildcard] });
    expect(minTolerationMs(both.used)).toBe(30_000);
  });

  it('reports a taint that no toleration matches', () => {
    const onlyNotReady: Toleration = {
      key: 'node.kubernetes.io/not-ready',
      operator: 'Exists',
      effect: 'NoExecute',
      tolerationSeconds: 300,
    };
    expect(matchingTolerations([unreachable], [onlyNotReady])).toEqual({
      allTolerated: false,
      used: [],
    });
    expect(matchingTolerations([unreachable], [])).toEqual({ allTolerated: false, used: [] });
  });

  it.each<[string, (number | undefined)[], number]>([
    ['the smallest of the used tolerations', [300, 30, 120], 30_000],
    ['forever (-1) when none has a limit', [undefined, undefined], -1],
    ['the limited one beside a forever one', [undefined, 45], 45_000],
    ['at once (0) for zero', [300, 0], 0],
    ['at once (0) for a negative value', [-5, 300], 0],
    ['at once (0) when no toleration is used', [], 0],
  ])('minimum toleration: %s', (_, seconds, expected) => {
    const used = seconds.map((s): Toleration => ({
      operator: 'Exists',
      effect: 'NoExecute',
      tolerationSeconds: s,
    }));
    expect(minTolerationMs(used)).toBe(expected);
  });
});
