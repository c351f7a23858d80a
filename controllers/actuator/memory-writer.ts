import type { Clock } from '../clock.ts';
import type { ClusterCache } from '../kube/cluster-cache.ts';
import {
  NodeSchema,
  PodSchema,
  findCondition,
  formatTime,
  podKey,
  type Node,
  type NodeCondition,
  type Pod,
  type PodCondition,
  type Taint,
  type Toleration,
} from '../kube/objects.ts';
import {
  ANNOTATION_ORIGINAL_TOLERATIONS,
  POD_CONDITION_DISRUPTION_TARGET,
} from '../kube/well-known.ts';
import { applyTaintChange, taintDiff } from '../lifecycle/taints.ts';
import type { ClusterWriter, EventSpec, EvictionOutcome, TaintUpdate } from './cluster-writer.ts';

class MemoryApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** A record of one write, with the clock time it happened at. */
export interface WriteRecord {
  at: number;
  operation:
    | 'node-conditions'
    | 'node-taints'
    | 'node-labels'
    | 'pod-not-ready'
    | 'pod-evicted'
    | 'pod-tolerations';
  name: string;
  detail?: unknown;
}

/**
 * A ClusterWriter that applies changes straight to a ClusterCache, as an
 * apiserver plus informer would (new resourceVersion, listeners told), so
 * the controllers can run against an in-memory cluster: pure-decision tests
 * and the benchmark. Evicted pods get a deletionTimestamp and stay, as pods
 * of an unreachable node do until their kubelet confirms.
 */
export class MemoryWriter implements ClusterWriter {
  readonly events: EventSpec[] = [];
  readonly writes: WriteRecord[] = [];
  private readonly faults: { operation: WriteRecord['operation']; name: string; status: number }[] =
    [];
  private readonly cache: ClusterCache;
  private readonly clock: Clock;
  private readonly keepRecords: boolean;
  private version = 1_000_000;

  constructor(cache: ClusterCache, clock: Clock, options: { keepRecords?: boolean } = {}) {
    this.cache = cache;
    this.clock = clock;
    this.keepRecords = options.keepRecords ?? true;
  }

  /** Makes the next write of `operation` on `name` fail with an API status, as a refusing apiserver would. */
  failNext(operation: WriteRecord['operation'], name: string, status = 500): void {
    this.faults.push({ operation, name, status });
  }

  /** A fresh resourceVersion, for objects a simulation creates itself. */
  nextVersion(): string {
    return String(++this.version);
  }

  async patchNodeConditions(
    nodeName: string,
    conditions: NodeCondition[],
    resourceVersion?: string,
  ): Promise<void> {
    await Promise.resolve();
    this.injectedFault('node-conditions', nodeName);
    const node = this.requireNode(nodeName);
    if (resourceVersion !== undefined && node.metadata.resourceVersion !== resourceVersion) {
      throw new MemoryApiError(409, `node ${nodeName} changed since version ${resourceVersion}`);
    }
    const merged = [...(node.status.conditions ?? [])];
    for (const c of conditions) {
      const i = merged.findIndex((x) => x.type === c.type);
      if (i === -1) merged.push({ ...c });
      else merged[i] = { ...merged[i], ...c };
    }
    this.record('node-conditions', nodeName, conditions);
    this.cache.upsertNode(this.bump({ ...node, status: { ...node.status, conditions: merged } }));
  }

  async updateNodeTaints(
    nodeName: string,
    add: Taint[],
    remove: Taint[],
  ): Promise<TaintUpdate | 'gone'> {
    await Promise.resolve();
    this.injectedFault('node-taints', nodeName);
    const node = this.cache.node(nodeName);
    if (node === undefined) return 'gone';
    const current = node.spec.taints ?? [];
    const next = applyTaintChange(current, add, remove);
    if (next === undefined) return { added: [], removed: [] };
    const diff = taintDiff(current, next);
    this.record('node-taints', nodeName, diff);
    this.cache.upsertNode(this.bump({ ...node, spec: { ...node.spec, taints: next } }));
    return diff;
  }

  async patchNodeLabels(nodeName: string, labels: Record<string, string>): Promise<void> {
    await Promise.resolve();
    this.injectedFault('node-labels', nodeName);
    const node = this.requireNode(nodeName);
    this.record('node-labels', nodeName, labels);
    this.cache.upsertNode(
      this.bump({
        ...node,
        metadata: { ...node.metadata, labels: { ...node.metadata.labels, ...labels } },
      }),
    );
  }

  async markPodNotReady(pod: Pod, _transitionTime: string): Promise<'done' | 'gone'> {
    await Promise.resolve();
    this.injectedFault('pod-not-ready', podKey(pod));
    const current = this.cache.pod(podKey(pod));
    if (current === undefined || current.metadata.uid !== pod.metadata.uid) return 'gone';
    this.record('pod-not-ready', podKey(pod));
    this.cache.upsertPod(
      this.bumpPod(withPodCondition(current, { type: 'Ready', status: 'False' })),
    );
    return 'done';
  }

  async evictPod(pod: Pod, _transitionTime: string): Promise<EvictionOutcome> {
    await Promise.resolve();
    this.injectedFault('pod-evicted', podKey(pod));
    const current = this.cache.pod(podKey(pod));
    if (current === undefined || current.metadata.uid !== pod.metadata.uid) return 'gone';
    if (current.metadata.deletionTimestamp !== undefined) return 'terminating';
    const marked = withPodCondition(current, {
      type: POD_CONDITION_DISRUPTION_TARGET,
      status: 'True',
      reason: 'DeletionByTaintManager',
    });
    this.record('pod-evicted', podKey(pod));
    this.cache.upsertPod(
      this.bumpPod({
        ...marked,
        metadata: { ...marked.metadata, deletionTimestamp: formatTime(this.clock.now()) },
      }),
    );
    return 'deleted';
  }

  async rewritePodTolerations(
    pod: Pod,
    tolerations: Toleration[],
    originalAnnotation: string | null,
  ): Promise<'done' | 'gone'> {
    await Promise.resolve();
    this.injectedFault('pod-tolerations', podKey(pod));
    const current = this.cache.pod(podKey(pod));
    if (current === undefined) return 'gone';
    if (current.metadata.resourceVersion !== pod.metadata.resourceVersion) {
      throw new MemoryApiError(409, `pod ${podKey(pod)} changed`);
    }
    const annotations = { ...current.metadata.annotations };
    if (originalAnnotation === null) delete annotations[ANNOTATION_ORIGINAL_TOLERATIONS];
    else annotations[ANNOTATION_ORIGINAL_TOLERATIONS] = originalAnnotation;
    this.record('pod-tolerations', podKey(pod), tolerations);
    this.cache.upsertPod(
      this.bumpPod({
        ...current,
        metadata: { ...current.metadata, annotations },
        spec: { ...current.spec, tolerations },
      }),
    );
    return 'done';
  }

  async getNode(nodeName: string): Promise<Node | undefined> {
    await Promise.resolve();
    return this.cache.node(nodeName);
  }

  recordEvent(event: EventSpec): void {
    if (this.keepRecords) this.events.push(event);
  }

  private injectedFault(operation: WriteRecord['operation'], name: string): void {
    const i = this.faults.findIndex((f) => f.operation === operation && f.name === name);
    if (i === -1) return;
    const { status } = this.faults.splice(i, 1)[0] as { status: number };
    throw new MemoryApiError(status, `${operation} of ${name} refused with ${status} (injected)`);
  }

  private record(operation: WriteRecord['operation'], name: string, detail?: unknown): void {
    if (this.keepRecords) this.writes.push({ at: this.clock.now(), operation, name, detail });
  }

  private requireNode(name: string): Node {
    const node = this.cache.node(name);
    if (node === undefined) throw new MemoryApiError(404, `node ${name} not found`);
    return node;
  }

  // What comes back through the informer is the written object, cut by the same schemas.
  private bump(node: Node): Node {
    return NodeSchema.parse({
      ...node,
      metadata: { ...node.metadata, resourceVersion: this.nextVersion() },
    });
  }

  private bumpPod(pod: Pod): Pod {
    return PodSchema.parse({
      ...pod,
      metadata: { ...pod.metadata, resourceVersion: this.nextVersion() },
    });
  }
}

function withPodCondition(pod: Pod, condition: PodCondition): Pod {
  const conditions = [...(pod.status.conditions ?? [])];
  const existing = findCondition(conditions, condition.type);
  if (existing === undefined) conditions.push(condition);
  else conditions[conditions.indexOf(existing)] = { ...existing, ...condition };
  return { ...pod, status: { ...pod.status, conditions } };
}
