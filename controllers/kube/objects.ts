import { z } from 'zod';
import {
  ANNOTATION_AUTONOMY,
  ANNOTATION_AUTONOMY_DURATION,
  ANNOTATION_MIRROR_POD,
  ANNOTATION_OPENYURT_AUTONOMY,
  ANNOTATION_OPENYURT_AUTONOMY_DURATION,
  ANNOTATION_ORIGINAL_TOLERATIONS,
  POD_CONDITION_DISRUPTION_TARGET,
  POD_CONDITION_READY,
} from './well-known.ts';

/*
 * The ECM keeps 150,000 pods in memory, so each object is cut down at the
 * boundary to the fields a decision reads (as client-go's informer transforms
 * do). The schemas below are both the validation and the cut: zod drops
 * every key they do not name.
 */

/*
 * Strings that repeat across 150,000 pods (namespaces, node names, toleration
 * keys, condition types) come out of JSON.parse as separate copies; keeping
 * one of each saves tens of megabytes. Bounded, so a flood of distinct
 * values cannot grow it without end.
 */
const INTERN_LIMIT = 100_000;
const internTable = new Map<string, string>();

export function intern(text: string): string {
  const hit = internTable.get(text);
  if (hit !== undefined) return hit;
  if (internTable.size < INTERN_LIMIT) internTable.set(text, text);
  return text;
}

const shared = z.string().transform(intern);

function keepOnly(keys: ReadonlySet<string>) {
  return z
    .record(z.string(), z.string())
    .optional()
    .transform((all): Record<string, string> | undefined => {
      if (all === undefined) return undefined;
      let kept: Record<string, string> | undefined;
      for (const k of Object.keys(all)) {
        if (keys.has(k)) (kept ??= {})[k] = all[k] as string;
      }
      return kept;
    })
    .optional();
}

const NODE_ANNOTATIONS = new Set([
  ANNOTATION_AUTONOMY,
  ANNOTATION_AUTONOMY_DURATION,
  ANNOTATION_OPENYURT_AUTONOMY,
  ANNOTATION_OPENYURT_AUTONOMY_DURATION,
]);
const POD_ANNOTATIONS = new Set([ANNOTATION_MIRROR_POD, ANNOTATION_ORIGINAL_TOLERATIONS]);
const POD_CONDITIONS = new Set([POD_CONDITION_READY, POD_CONDITION_DISRUPTION_TARGET]);

export const NodeConditionSchema = z.object({
  type: z.string(),
  status: z.string(),
  reason: z.string().optional(),
  message: z.string().optional(),
  lastHeartbeatTime: z.string().optional(),
  lastTransitionTime: z.string().optional(),
});
export type NodeCondition = z.output<typeof NodeConditionSchema>;

export const TaintSchema = z.object({
  key: z.string(),
  value: z.string().optional(),
  effect: z.string(),
  timeAdded: z.string().optional(),
});
export type Taint = z.output<typeof TaintSchema>;

export const NodeSchema = z.object({
  metadata: z.object({
    name: z.string(),
    uid: z.string().default(''),
    resourceVersion: z.string().default(''),
    creationTimestamp: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: keepOnly(NODE_ANNOTATIONS),
  }),
  spec: z
    .object({
      taints: z.array(TaintSchema).optional(),
      unschedulable: z.boolean().optional(),
    })
    .default({}),
  status: z
    .object({
      conditions: z.array(NodeConditionSchema).optional(),
    })
    .default({}),
});
export type Node = z.output<typeof NodeSchema>;

export const TolerationSchema = z.object({
  key: shared.optional(),
  operator: shared.optional(),
  value: shared.optional(),
  effect: shared.optional(),
  tolerationSeconds: z.number().int().optional(),
});
export type Toleration = z.output<typeof TolerationSchema>;

/** Pod conditions as decisions read them: which, whether, and why (times and messages dropped). */
export const PodConditionSchema = z.object({
  type: shared,
  status: shared,
  reason: shared.optional(),
});
export type PodCondition = z.output<typeof PodConditionSchema>;

const PodShape = z.object({
  metadata: z.object({
    name: z.string(),
    namespace: shared.default('default'),
    uid: z.string().default(''),
    resourceVersion: z.string().default(''),
    deletionTimestamp: z.string().optional(),
    annotations: keepOnly(POD_ANNOTATIONS),
    ownerReferences: z.array(z.object({ kind: shared })).optional(),
  }),
  spec: z
    .object({
      nodeName: shared.optional(),
      tolerations: z.array(TolerationSchema).optional(),
    })
    .default({}),
  status: z
    .object({
      phase: shared.optional(),
      // Only the conditions a decision reads are kept.
      conditions: z
        .array(PodConditionSchema)
        .optional()
        .transform((v) => v?.filter((c) => POD_CONDITIONS.has(c.type)))
        .optional(),
    })
    .default({}),
});
/**
 * A parsed pod in its smallest form: fixed-shape objects, and the lists most
 * pods share (the two default tolerations, one Ready condition, one owner
 * kind) stored once and frozen. Nothing may change a cached pod in place.
 */
function compactPod(p: z.output<typeof PodShape>): z.output<typeof PodShape> {
  const m = p.metadata;
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      deletionTimestamp: m.deletionTimestamp,
      annotations: m.annotations,
      ownerReferences: shareList(m.ownerReferences),
    },
    spec: { nodeName: p.spec.nodeName, tolerations: shareList(p.spec.tolerations) },
    status: { phase: p.status.phase, conditions: shareList(p.status.conditions) },
  };
}

const SHARED_LIST_LIMIT = 10_000;
const sharedLists = new Map<string, readonly object[]>();

function shareList<T extends object>(list: T[] | undefined): T[] | undefined {
  if (list === undefined) return undefined;
  const key = JSON.stringify(list);
  const hit = sharedLists.get(key);
  if (hit !== undefined) return hit as T[];
  const frozen = Object.freeze(list.map((item) => Object.freeze({ ...item })));
  if (sharedLists.size < SHARED_LIST_LIMIT) sharedLists.set(key, frozen);
  return frozen as T[];
}

export const PodSchema = PodShape.transform(compactPod);
export type Pod = z.output<typeof PodSchema>;

export const LeaseSchema = z.object({
  metadata: z.object({
    name: z.string(),
    namespace: z.string().default(''),
    uid: z.string().default(''),
    resourceVersion: z.string().default(''),
  }),
  spec: z
    .object({
      holderIdentity: z.string().optional(),
      leaseDurationSeconds: z.number().int().optional(),
      acquireTime: z.string().optional(),
      renewTime: z.string().optional(),
      leaseTransitions: z.number().int().optional(),
    })
    .default({}),
});
export type Lease = z.output<typeof LeaseSchema>;

export function podKey(pod: { metadata: { namespace: string; name: string } }): string {
  return `${pod.metadata.namespace}/${pod.metadata.name}`;
}

export function findCondition<C extends { type: string }>(
  conditions: readonly C[] | undefined,
  type: string,
): C | undefined {
  if (conditions === undefined) return undefined;
  for (const c of conditions) if (c.type === type) return c;
  return undefined;
}

/** metav1.Time: RFC 3339 with whole seconds, as the apiserver stores it. */
export function formatTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** metav1.MicroTime: RFC 3339 with microseconds (leases). */
export function formatMicroTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** Parses an RFC 3339 time to milliseconds; undefined when absent or unreadable. */
export function parseTime(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Microseconds since the epoch, keeping MicroTime precision for ordering renewals. */
export function parseMicroTime(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) return undefined;
  const frac = /\.(\d+)/.exec(text)?.[1] ?? '';
  const micros = Number((frac + '000000').slice(3, 6));
  return ms * 1000 + micros;
}

/**
 * Orders two resourceVersions when both are integers (etcd's and the test
 * double's are); otherwise only equality is known.
 */
export function resourceVersionAtLeast(have: string, want: string): boolean {
  if (have === want) return true;
  if (/^\d+$/.test(have) && /^\d+$/.test(want)) {
    return have.length !== want.length ? have.length > want.length : have > want;
  }
  return false;
}
