import type { Logger } from 'pino';
import type { Clock } from '../clock.ts';
import type { CachedKind, ClusterCache } from '../kube/cluster-cache.ts';
import {
  NodeSchema,
  PodSchema,
  findCondition,
  formatTime,
  podKey,
  type Node,
  type NodeCondition,
  type Pod,
  type Taint,
  type Toleration,
} from '../kube/objects.ts';
import {
  CONTENT_MERGE_PATCH,
  CONTENT_STRATEGIC_MERGE_PATCH,
  type RestClient,
} from '../kube/rest-client.ts';
import {
  ANNOTATION_ORIGINAL_TOLERATIONS,
  POD_CONDITION_DISRUPTION_TARGET,
} from '../kube/well-known.ts';
import { applyTaintChange, taintDiff } from '../lifecycle/taints.ts';
import type { Spawn } from '../work-tracker.ts';
import {
  errorStatus,
  type ClusterWriter,
  type EventSpec,
  type EvictionOutcome,
  type TaintUpdate,
} from './cluster-writer.ts';

/** Thrown instead of writing when this instance is not (or no longer) the leader. */
export class NotLeaderError extends Error {
  constructor(operation: string) {
    super(`not writing (${operation}): this instance does not hold the leader lease`);
    this.name = 'NotLeaderError';
  }
}

const CONFLICT_RETRIES = 5;
/** client-go's maxQueuedEvents: Events waiting to be posted beyond this are dropped. */
const MAX_QUEUED_EVENTS = 1000;
const DISRUPTION_REASON = 'DeletionByTaintManager';
const DISRUPTION_MESSAGE = 'Taint manager: deleting due to NoExecute taint';

export interface ApiWriterDeps {
  client: RestClient;
  cache: ClusterCache;
  clock: Clock;
  logger: Logger;
  /** True while this instance may write (holds the lease, within its renew deadline). */
  mayWrite: () => boolean;
  /** Runs background work (Event posts) as tracked work. */
  spawn: Spawn;
  /** reportingInstance of Events. */
  instance: string;
  /**
   * Remember each write until the informer delivers it, so `echoesSeen()`
   * can tell a driver the cache has caught up (used by tests).
   */
  trackEchoes?: boolean;
}

function nodePath(name: string): string {
  return `/api/v1/nodes/${encodeURIComponent(name)}`;
}

function podPath(pod: Pod): string {
  return `/api/v1/namespaces/${encodeURIComponent(pod.metadata.namespace)}/pods/${encodeURIComponent(pod.metadata.name)}`;
}

/**
 * Applies the controllers' decisions through the Kubernetes API. Every write
 * first checks leadership (fencing): a leader that lost its lease stops
 * writing before another can take over. Taint changes and pod deletions are
 * guarded by resourceVersion (and uid) preconditions.
 */
export class ApiWriter implements ClusterWriter {
  private readonly client: RestClient;
  private readonly cache: ClusterCache;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly mayWrite: () => boolean;
  private readonly spawn: Spawn;
  private readonly instance: string;
  private readonly trackEchoes: boolean;
  private readonly echoes = new Set<Promise<void>>();
  private eventSeq = 0;
  private readonly queuedEvents: { namespace: string; body: object; event: EventSpec }[] = [];
  private postingEvents = false;
  private eventsDropped = 0;
  private droppedSinceDrain = 0;

  constructor(deps: ApiWriterDeps) {
    this.client = deps.client;
    this.cache = deps.cache;
    this.clock = deps.clock;
    this.logger = deps.logger;
    this.mayWrite = deps.mayWrite;
    this.spawn = deps.spawn;
    this.instance = deps.instance;
    this.trackEchoes = deps.trackEchoes ?? false;
  }

  /** Writes not yet seen through the informers (tracked only with trackEchoes). */
  get echoesPending(): number {
    return this.echoes.size;
  }

  /** Resolves once every write made so far has come back through the informers. */
  async echoesSeen(): Promise<void> {
    while (this.echoes.size > 0) await Promise.all([...this.echoes]);
  }

  async patchNodeConditions(
    nodeName: string,
    conditions: NodeCondition[],
    resourceVersion?: string,
  ): Promise<void> {
    this.fence('patch node status');
    const body: Record<string, unknown> = { status: { conditions } };
    if (resourceVersion !== undefined) body.metadata = { resourceVersion };
    const res = await this.client.request('PATCH', `${nodePath(nodeName)}/status`, {
      body,
      contentType: CONTENT_STRATEGIC_MERGE_PATCH,
    });
    this.echo('node', nodeName, res);
  }

  async updateNodeTaints(
    nodeName: string,
    add: Taint[],
    remove: Taint[],
  ): Promise<TaintUpdate | 'gone'> {
    let node = this.cache.node(nodeName);
    let lastErr: unknown;
    for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
      if (node === undefined) {
        node = await this.getNode(nodeName);
        if (node === undefined) return 'gone';
      }
      const current = node.spec.taints ?? [];
      const next = applyTaintChange(current, add, remove);
      if (next === undefined) return { added: [], removed: [] };
      this.fence('update node taints');
      try {
        const res = await this.client.request('PATCH', nodePath(nodeName), {
          // Taints are an atomic list: send all of them, only onto the version they were computed from.
          body: {
            metadata: { resourceVersion: node.metadata.resourceVersion },
            spec: { taints: next },
          },
          contentType: CONTENT_MERGE_PATCH,
        });
        this.echo('node', nodeName, res);
        return taintDiff(current, next);
      } catch (err) {
        const status = errorStatus(err);
        if (status === 404) return 'gone';
        if (status !== 409) throw err;
        lastErr = err;
        node = undefined; // re-read and recompute
      }
    }
    throw lastErr;
  }

  async patchNodeLabels(nodeName: string, labels: Record<string, string>): Promise<void> {
    this.fence('patch node labels');
    const res = await this.client.request('PATCH', nodePath(nodeName), {
      body: { metadata: { labels } },
      contentType: CONTENT_STRATEGIC_MERGE_PATCH,
    });
    this.echo('node', nodeName, res);
  }

  async markPodNotReady(pod: Pod, transitionTime: string): Promise<'done' | 'gone'> {
    return this.patchPod('mark pod not ready', pod, '/status', CONTENT_STRATEGIC_MERGE_PATCH, {
      status: {
        conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: transitionTime }],
      },
    });
  }

  async evictPod(pod: Pod, transitionTime: string): Promise<EvictionOutcome> {
    const key = podKey(pod);
    let lastErr: unknown;
    for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
      this.fence('evict pod');
      let fresh: Pod;
      try {
        fresh = PodSchema.parse(await this.client.request('GET', podPath(pod)));
      } catch (err) {
        if (errorStatus(err) === 404) return 'gone';
        throw err;
      }
      if (fresh.metadata.uid !== pod.metadata.uid) return 'gone';
      if (fresh.metadata.deletionTimestamp !== undefined) return 'terminating';
      let resourceVersion = fresh.metadata.resourceVersion;
      const existing = findCondition(fresh.status.conditions, POD_CONDITION_DISRUPTION_TARGET);
      if (existing?.status !== 'True' || existing.reason !== DISRUPTION_REASON) {
        try {
          const res = PodSchema.parse(
            await this.client.request('PATCH', `${podPath(pod)}/status`, {
              body: {
                status: {
                  conditions: [
                    {
                      type: POD_CONDITION_DISRUPTION_TARGET,
                      status: 'True',
                      reason: DISRUPTION_REASON,
                      message: DISRUPTION_MESSAGE,
                      lastTransitionTime: transitionTime,
                    },
                  ],
                },
              },
              contentType: CONTENT_STRATEGIC_MERGE_PATCH,
            }),
          );
          resourceVersion = res.metadata.resourceVersion;
        } catch (err) {
          if (errorStatus(err) === 404) return 'gone';
          throw err;
        }
      }
      this.fence('evict pod');
      try {
        const res = await this.client.request('DELETE', podPath(pod), {
          body: {
            apiVersion: 'v1',
            kind: 'DeleteOptions',
            preconditions: { uid: pod.metadata.uid, resourceVersion },
          },
        });
        const after = PodSchema.safeParse(res);
        // 200 with the last state when gone at once; the pod with deletionTimestamp when graceful.
        if (after.success && after.data.metadata.deletionTimestamp !== undefined) {
          this.echo('pod', key, res);
        } else {
          this.echoGone('pod', key);
        }
        return 'deleted';
      } catch (err) {
        const status = errorStatus(err);
        if (status === 404) return 'gone';
        if (status !== 409) throw err;
        lastErr = err; // changed since we read it: read again
      }
    }
    throw lastErr;
  }

  async rewritePodTolerations(
    pod: Pod,
    tolerations: Toleration[],
    originalAnnotation: string | null,
  ): Promise<'done' | 'gone'> {
    return this.patchPod('rewrite pod tolerations', pod, '', CONTENT_MERGE_PATCH, {
      metadata: {
        resourceVersion: pod.metadata.resourceVersion,
        annotations: { [ANNOTATION_ORIGINAL_TOLERATIONS]: originalAnnotation },
      },
      spec: { tolerations },
    });
  }

  async getNode(nodeName: string): Promise<Node | undefined> {
    try {
      return NodeSchema.parse(await this.client.request('GET', nodePath(nodeName)));
    } catch (err) {
      if (errorStatus(err) === 404) return undefined;
      throw err;
    }
  }

  recordEvent(event: EventSpec): void {
    if (!this.mayWrite()) return;
    const now = this.clock.now();
    const time = formatTime(now);
    // client-go names events <object>.<nanoseconds in hex>; a counter keeps names unique within a millisecond.
    const stamp = (BigInt(now) * 1_000_000n + BigInt(this.eventSeq++ % 1_000_000)).toString(16);
    const namespace = event.involved.namespace ?? 'default';
    const body = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${event.involved.name}.${stamp}`, namespace },
      involvedObject: {
        apiVersion: 'v1',
        kind: event.involved.kind,
        name: event.involved.name,
        namespace: event.involved.namespace,
        uid: event.involved.uid,
      },
      reason: event.reason,
      message: event.message,
      type: event.type,
      source: { component: event.component },
      firstTimestamp: time,
      lastTimestamp: time,
      count: 1,
      reportingComponent: event.component,
      reportingInstance: this.instance,
    };
    if (this.queuedEvents.length >= MAX_QUEUED_EVENTS) {
      this.eventsDropped++;
      if (this.droppedSinceDrain++ === 0) {
        this.logger.warn(
          { queued: MAX_QUEUED_EVENTS },
          'too many events waiting to be recorded; dropping events until the queue drains',
        );
      }
      return;
    }
    this.queuedEvents.push({ namespace, body, event });
    if (this.postingEvents) return;
    this.postingEvents = true;
    this.spawn(() => this.postQueuedEvents());
  }

  /** Events dropped because the queue was full. */
  get droppedEvents(): number {
    return this.eventsDropped;
  }

  /**
   * Posts queued Events one at a time, as client-go's broadcaster does: a
   * new leader's RegisteredNode for thousands of nodes must not become
   * thousands of requests at once. A leader that lost its lease drops the rest.
   */
  private async postQueuedEvents(): Promise<void> {
    try {
      for (let next = this.queuedEvents.shift(); next !== undefined;) {
        if (!this.mayWrite()) {
          this.queuedEvents.length = 0;
          return;
        }
        const { namespace, body, event } = next;
        try {
          await this.client.request(
            'POST',
            `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`,
            { body },
          );
        } catch (err) {
          this.logger.warn(
            { err, reason: event.reason, object: event.involved.name },
            'recording event failed',
          );
        }
        next = this.queuedEvents.shift();
      }
      if (this.droppedSinceDrain > 0) {
        this.logger.warn({ dropped: this.droppedSinceDrain }, 'event queue drained');
        this.droppedSinceDrain = 0;
      }
    } finally {
      this.postingEvents = false;
    }
  }

  /** One fenced PATCH of a pod (or its `subresource` path); 'gone' when there is no such pod. */
  private async patchPod(
    operation: string,
    pod: Pod,
    subresource: '' | '/status',
    contentType: string,
    body: unknown,
  ): Promise<'done' | 'gone'> {
    this.fence(operation);
    try {
      const res = await this.client.request('PATCH', `${podPath(pod)}${subresource}`, {
        body,
        contentType,
      });
      this.echo('pod', podKey(pod), res);
      return 'done';
    } catch (err) {
      if (errorStatus(err) === 404) return 'gone';
      throw err;
    }
  }

  private fence(operation: string): void {
    if (!this.mayWrite()) throw new NotLeaderError(operation);
  }

  private echo(kind: CachedKind, key: string, response: unknown): void {
    if (!this.trackEchoes) return;
    const rv = (response as { metadata?: { resourceVersion?: unknown } } | undefined)?.metadata
      ?.resourceVersion;
    if (typeof rv !== 'string') return;
    this.remember(this.cache.waitFor(kind, key, rv));
  }

  private echoGone(kind: CachedKind, key: string): void {
    if (!this.trackEchoes) return;
    this.remember(this.cache.waitFor(kind, key, undefined));
  }

  private remember(p: Promise<void>): void {
    this.echoes.add(p);
    void p.then(() => this.echoes.delete(p));
  }
}
