import type { Node, NodeCondition, Pod, Taint, Toleration } from '../kube/objects.ts';

/** An object an Event is about. Cluster-scoped objects (nodes) have no namespace. */
export interface InvolvedObject {
  kind: 'Node' | 'Pod';
  name: string;
  namespace?: string;
  uid?: string;
}

/** The reference an Event about a pod carries. */
export function podReference(pod: Pod): InvolvedObject {
  const { name, namespace, uid } = pod.metadata;
  return { kind: 'Pod', name, namespace, uid };
}

/** The reference an Event about a node carries. */
export function nodeReference(node: Node): InvolvedObject {
  return { kind: 'Node', name: node.metadata.name, uid: node.metadata.uid };
}

export interface EventSpec {
  involved: InvolvedObject;
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
  /** The reporting controller, as upstream names it (node-controller, taint-eviction-controller). */
  component: string;
}

export interface TaintUpdate {
  added: Taint[];
  removed: Taint[];
}

/**
 * deleted: this call deleted the pod; gone: no such pod (or another with
 * that name); terminating: someone already deleted it (another leader).
 */
export type EvictionOutcome = 'deleted' | 'gone' | 'terminating';

/**
 * Everything the controllers change in the cluster. Controllers decide; a
 * writer applies. Implementations: ApiWriter (HTTP to a kube-apiserver,
 * fenced by leadership) and MemoryWriter (applies to an in-memory cache, for
 * simulations and the benchmark).
 *
 * Methods reject with an ApiError-like error ({status}) when the API refuses;
 * a 409 means the object changed since the decision was made.
 */
export interface ClusterWriter {
  /**
   * Strategic-merge-patches node status conditions (merged by type). With
   * `resourceVersion`, the patch only applies to that version (409 otherwise).
   */
  patchNodeConditions(
    nodeName: string,
    conditions: NodeCondition[],
    resourceVersion?: string,
  ): Promise<void>;
  /**
   * Adds (replacing same key+effect) and removes taints, based on the freshest
   * copy of the node and guarded by its resourceVersion; re-reads and retries on
   * conflict. Resolves with what actually changed ('gone' when there is no such
   * node); rejects when the API keeps refusing.
   */
  updateNodeTaints(nodeName: string, add: Taint[], remove: Taint[]): Promise<TaintUpdate | 'gone'>;
  patchNodeLabels(nodeName: string, labels: Record<string, string>): Promise<void>;
  /** Sets the pod's Ready condition to False; 'gone' when the pod no longer exists. */
  markPodNotReady(pod: Pod, transitionTime: string): Promise<'done' | 'gone'>;
  /**
   * Taint-based eviction: reads the pod fresh, adds the DisruptionTarget
   * condition, then deletes it with uid and resourceVersion preconditions,
   * so a pod already being deleted (by another leader) is not deleted twice.
   */
  evictPod(pod: Pod, transitionTime: string): Promise<EvictionOutcome>;
  /** Replaces the pod's tolerations and sets (string) or removes (null) its original-tolerations annotation. */
  rewritePodTolerations(
    pod: Pod,
    tolerations: Toleration[],
    originalAnnotation: string | null,
  ): Promise<'done' | 'gone'>;
  /** A fresh read of a node, bypassing the cache (for retries after a conflict). */
  getNode(nodeName: string): Promise<Node | undefined>;
  /** Records an Event; best effort, never throws. */
  recordEvent(event: EventSpec): void;
}

/** Error status of a failed write, when the failure came from the API. */
export function errorStatus(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'status' in err) {
    const s = (err as { status: unknown }).status;
    return typeof s === 'number' ? s : undefined;
  }
  return undefined;
}

export function isConflict(err: unknown): boolean {
  return errorStatus(err) === 409;
}

export function isNotFound(err: unknown): boolean {
  return errorStatus(err) === 404;
}
