import type { Node, Taint, Toleration } from '../kube/objects.ts';
import {
  CONDITION_DISK_PRESSURE,
  CONDITION_MEMORY_PRESSURE,
  CONDITION_NETWORK_UNAVAILABLE,
  CONDITION_PID_PRESSURE,
  CONDITION_READY,
  TAINT_DISK_PRESSURE,
  TAINT_MEMORY_PRESSURE,
  TAINT_NETWORK_UNAVAILABLE,
  TAINT_NOT_READY,
  TAINT_PID_PRESSURE,
  TAINT_UNREACHABLE,
  TAINT_UNSCHEDULABLE,
} from '../kube/well-known.ts';

export const NO_EXECUTE = 'NoExecute';
export const NO_SCHEDULE = 'NoSchedule';

export const UNREACHABLE_NO_EXECUTE: Taint = { key: TAINT_UNREACHABLE, effect: NO_EXECUTE };
export const NOT_READY_NO_EXECUTE: Taint = { key: TAINT_NOT_READY, effect: NO_EXECUTE };

/** Which condition status earns which NoSchedule taint (upstream's nodeConditionToTaintKeyStatusMap). */
const CONDITION_TAINTS: Record<string, Record<string, string>> = {
  [CONDITION_READY]: { False: TAINT_NOT_READY, Unknown: TAINT_UNREACHABLE },
  [CONDITION_MEMORY_PRESSURE]: { True: TAINT_MEMORY_PRESSURE },
  [CONDITION_DISK_PRESSURE]: { True: TAINT_DISK_PRESSURE },
  [CONDITION_NETWORK_UNAVAILABLE]: { True: TAINT_NETWORK_UNAVAILABLE },
  [CONDITION_PID_PRESSURE]: { True: TAINT_PID_PRESSURE },
};

const CONDITION_TAINT_KEYS = new Set([
  TAINT_NOT_READY,
  TAINT_UNREACHABLE,
  TAINT_MEMORY_PRESSURE,
  TAINT_DISK_PRESSURE,
  TAINT_NETWORK_UNAVAILABLE,
  TAINT_PID_PRESSURE,
]);

/** Key and effect identify a taint on a node (Taint.MatchTaint). */
export function sameTaint(a: Taint, b: Taint): boolean {
  return a.key === b.key && a.effect === b.effect;
}

export function taintExists(taints: readonly Taint[] | undefined, t: Taint): boolean {
  return taints?.some((x) => sameTaint(x, t)) ?? false;
}

export function noExecuteTaints(node: Node): Taint[] {
  return (node.spec.taints ?? []).filter((t) => t.effect === NO_EXECUTE);
}

/**
 * The NoSchedule taints a node should carry given its conditions and
 * spec.unschedulable, and which of its present NoSchedule taints are ours to
 * manage; the difference is what the NoSchedule pass adds and removes.
 */
export function noScheduleTaintDiff(node: Node): { add: Taint[]; remove: Taint[] } {
  const wanted: Taint[] = [];
  for (const c of node.status.conditions ?? []) {
    const key = CONDITION_TAINTS[c.type]?.[c.status];
    if (key !== undefined) wanted.push({ key, effect: NO_SCHEDULE });
  }
  if (node.spec.unschedulable === true)
    wanted.push({ key: TAINT_UNSCHEDULABLE, effect: NO_SCHEDULE });
  const managed = (node.spec.taints ?? []).filter(
    (t) =>
      t.effect === NO_SCHEDULE &&
      (t.key === TAINT_UNSCHEDULABLE || CONDITION_TAINT_KEYS.has(t.key)),
  );
  return {
    add: wanted.filter((w) => !managed.some((m) => sameTaint(m, w))),
    remove: managed.filter((m) => !wanted.some((w) => sameTaint(m, w))),
  };
}

/**
 * Applies an add/remove to a taint list the way the upstream helpers do: an
 * added taint replaces one with the same key and effect (unless identical),
 * a removed one goes by key and effect. Returns undefined when nothing changes.
 */
export function applyTaintChange(
  current: readonly Taint[],
  add: readonly Taint[],
  remove: readonly Taint[],
): Taint[] | undefined {
  let changed = false;
  let next = [...current];
  for (const t of add) {
    const i = next.findIndex((x) => sameTaint(x, t));
    if (i === -1) {
      next.push(t);
      changed = true;
    } else {
      const existing = next[i] as Taint;
      if (existing.value !== t.value || existing.timeAdded !== t.timeAdded) {
        next[i] = t;
        changed = true;
      }
    }
  }
  for (const t of remove) {
    const before = next.length;
    next = next.filter((x) => !sameTaint(x, t));
    if (next.length !== before) changed = true;
  }
  return changed ? next : undefined;
}

/** What a change from `before` to `after` added (or re-stamped) and removed. */
export function taintDiff(
  before: readonly Taint[],
  after: readonly Taint[],
): { added: Taint[]; removed: Taint[] } {
  return {
    added: after.filter(
      (t) =>
        !before.some((b) => sameTaint(b, t) && b.value === t.value && b.timeAdded === t.timeAdded),
    ),
    removed: before.filter((b) => !after.some((t) => sameTaint(b, t))),
  };
}

/** Toleration.ToleratesTaint: empty effect matches any, empty key with Exists matches any key. */
export function toleratesTaint(tol: Toleration, taint: Taint): boolean {
  if (tol.effect !== undefined && tol.effect !== '' && tol.effect !== taint.effect) return false;
  if (tol.key !== undefined && tol.key !== '' && tol.key !== taint.key) return false;
  switch (tol.operator ?? '') {
    case '':
    case 'Equal':
      return (tol.value ?? '') === (taint.value ?? '');
    case 'Exists':
      return true;
    default:
      return false;
  }
}

/**
 * For each taint, the first toleration that tolerates it (as upstream's
 * GetMatchingTolerations picks); `allTolerated` is false when any taint has none.
 */
export function matchingTolerations(
  taints: readonly Taint[],
  tolerations: readonly Toleration[],
): { allTolerated: boolean; used: Toleration[] } {
  const used: Toleration[] = [];
  for (const taint of taints) {
    const tol = tolerations.find((t) => toleratesTaint(t, taint));
    if (tol === undefined) return { allTolerated: false, used: [] };
    used.push(tol);
  }
  return { allTolerated: true, used };
}

/**
 * The shortest tolerationSeconds among the used tolerations, in ms: 0 when
 * any is zero or negative (or none are used), -1 when all tolerate forever.
 */
export function minTolerationMs(used: readonly Toleration[]): number {
  if (used.length === 0) return 0;
  let min = Number.POSITIVE_INFINITY;
  for (const t of used) {
    if (t.tolerationSeconds === undefined) continue;
    if (t.tolerationSeconds <= 0) return 0;
    if (t.tolerationSeconds < min) min = t.tolerationSeconds;
  }
  return min === Number.POSITIVE_INFINITY ? -1 : min * 1000;
}
