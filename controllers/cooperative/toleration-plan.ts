import { z } from 'zod';
import type { Pod, Toleration } from '../kube/objects.ts';
import { TolerationSchema } from '../kube/objects.ts';
import {
  ANNOTATION_MIRROR_POD,
  ANNOTATION_ORIGINAL_TOLERATIONS,
  TAINT_NOT_READY,
  TAINT_UNREACHABLE,
} from '../kube/well-known.ts';

const OriginalTolerationsSchema = z.array(TolerationSchema);

/** What cooperative mode wants a pod to look like. */
export type TolerationPlan =
  | { kind: 'leave'; why: string }
  | { kind: 'unchanged' }
  | {
      kind: 'rewrite';
      operation: 'protect' | 'restore';
      tolerations: Toleration[];
      /** New value of the original-tolerations annotation; null removes it. */
      annotation: string | null;
    };

/** The tolerations cooperative mode manages: NoExecute, for the not-ready and unreachable taints. */
export function isManagedToleration(t: Toleration): boolean {
  return t.effect === 'NoExecute' && (t.key === TAINT_NOT_READY || t.key === TAINT_UNREACHABLE);
}

function sameIgnoringSeconds(a: Toleration, b: Toleration): boolean {
  return (
    (a.key ?? '') === (b.key ?? '') &&
    (a.operator ?? '') === (b.operator ?? '') &&
    (a.value ?? '') === (b.value ?? '') &&
    (a.effect ?? '') === (b.effect ?? '')
  );
}

/** DaemonSet pods tolerate these taints forever already; static (mirror) pods belong to the kubelet. */
export function leftAlone(pod: Pod): string | undefined {
  if (pod.metadata.ownerReferences?.some((o) => o.kind === 'DaemonSet')) return 'DaemonSet pod';
  if (pod.metadata.annotations?.[ANNOTATION_MIRROR_POD] !== undefined) return 'static pod';
  if (pod.metadata.deletionTimestamp !== undefined) return 'terminating';
  if (pod.status.phase === 'Succeeded' || pod.status.phase === 'Failed') return 'finished';
  return undefined;
}

/**
 * Cooperative mode plans each pod's managed tolerations: on an autonomous
 * node, every finite tolerationSeconds becomes the original plus the
 * autonomy duration (or no limit when the duration is 0), with the original
 * list kept in an annotation; elsewhere the originals come back exactly and
 * the annotation goes. Only tolerationSeconds changes, the one edit the API
 * allows on a running pod's existing tolerations; tolerations are never
 * added (they could not be removed again).
 */
export function planTolerations(pod: Pod, autonomyMs: number | undefined): TolerationPlan {
  const why = leftAlone(pod);
  if (why !== undefined) return { kind: 'leave', why };
  const current = pod.spec.tolerations ?? [];
  const stored = pod.metadata.annotations?.[ANNOTATION_ORIGINAL_TOLERATIONS];
  let originals: Toleration[] = current;
  if (stored !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(stored);
    } catch {
      parsed = undefined;
    }
    const result = OriginalTolerationsSchema.safeParse(parsed);
    if (!result.success) {
      return { kind: 'leave', why: `annotation ${ANNOTATION_ORIGINAL_TOLERATIONS} is unreadable` };
    }
    originals = result.data;
  }
  if (autonomyMs === undefined && stored === undefined) return { kind: 'unchanged' };
  if (autonomyMs !== undefined && !current.some(isManagedToleration)) {
    return { kind: 'leave', why: 'no NoExecute not-ready/unreachable toleration to extend' };
  }

  const used = new Set<number>();
  const next = current.map((t): Toleration => {
    if (!isManagedToleration(t)) return t;
    const i = originals.findIndex((o, idx) => !used.has(idx) && sameIgnoringSeconds(o, t));
    if (i === -1) return t;
    used.add(i);
    const original = (originals[i] as Toleration).tolerationSeconds;
    let seconds: number | undefined;
    if (autonomyMs === undefined) seconds = original;
    else if (original === undefined || autonomyMs === 0) seconds = undefined;
    else seconds = original + Math.ceil(autonomyMs / 1000);
    const out: Toleration = { ...t };
    if (seconds === undefined) delete out.tolerationSeconds;
    else out.tolerationSeconds = seconds;
    return out;
  });

  const tolerationsChanged = next.some(
    (t, i) => t.tolerationSeconds !== current[i]?.tolerationSeconds,
  );
  // Originals are kept only once something was changed (pods that tolerate forever need nothing).
  const annotation =
    autonomyMs === undefined || (stored === undefined && !tolerationsChanged)
      ? null
      : (stored ?? JSON.stringify(current));
  const annotationChanged = annotation !== (stored ?? null);
  if (!tolerationsChanged && !annotationChanged) return { kind: 'unchanged' };
  return {
    kind: 'rewrite',
    operation: autonomyMs === undefined ? 'restore' : 'protect',
    tolerations: next,
    annotation,
  };
}
