import type { Logger } from 'pino';
import { podReference, type ClusterWriter } from '../actuator/cluster-writer.ts';
import type { Clock, TimerHandle } from '../clock.ts';
import type { ControllerDeps } from '../controller-deps.ts';
import type { EcmMetrics } from '../ecm-metrics.ts';
import type { ClusterCache } from '../kube/cluster-cache.ts';
import type { Node, Pod, Taint, Toleration } from '../kube/objects.ts';
import { formatTime, podKey } from '../kube/objects.ts';
import { matchingTolerations, minTolerationMs, noExecuteTaints } from '../lifecycle/taints.ts';
import type { Spawn } from '../work-tracker.ts';

/** The component name upstream's taint eviction controller reports Events as. */
export const TAINT_EVICTION_COMPONENT = 'taint-eviction-controller';

/** Upstream retries a failed deletion this many times. */
const DELETE_RETRIES = 5;

interface ScheduledEviction {
  /** The pod the countdown is for: another pod may take its name later. */
  uid: string;
  /** When the countdown started: when this controller first saw the pod under NoExecute taints. */
  createdAt: number;
  fireAt: number;
  timer: TimerHandle | undefined;
  /** Kept after a successful eviction so the pod is not evicted twice. */
  done: boolean;
}

export interface TaintEvictionDeps extends ControllerDeps {
  spawn: Spawn;
}

/**
 * Upstream's taint eviction controller: a pod on a node with NoExecute
 * taints is deleted once the smallest tolerationSeconds of the tolerations
 * it uses has passed, counted from when this controller saw it under those
 * taints; at once if some taint is not tolerated; never if all its matching
 * tolerations tolerate forever. Removing the taints (or the pod changing to
 * tolerate forever) cancels the countdown.
 */
export class TaintEvictionController {
  private readonly cache: ClusterCache;
  private readonly clock: Clock;
  private readonly writer: ClusterWriter;
  private readonly metrics: EcmMetrics;
  private readonly logger: Logger;
  private readonly spawn: Spawn;
  private readonly taintedNodes = new Map<string, Taint[]>();
  private readonly scheduled = new Map<string, ScheduledEviction>();
  private stopped = false;

  constructor(deps: TaintEvictionDeps) {
    this.cache = deps.cache;
    this.clock = deps.clock;
    this.writer = deps.writer;
    this.metrics = deps.metrics;
    this.logger = deps.logger;
    this.spawn = deps.spawn;
  }

  /** Looks at every node once, as the initial list of upstream's informers would. */
  start(): void {
    for (const node of this.cache.nodes()) this.handleNodeUpdate(node.metadata.name);
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.scheduled.values()) s.timer?.cancel();
    this.scheduled.clear();
  }

  /** When each pod is due to be evicted (ms), for observation and tests. */
  pendingEvictions(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [k, s] of this.scheduled) if (!s.done) out.set(k, s.fireAt);
    return out;
  }

  nodeChanged(old: Node | undefined, next: Node | undefined): void {
    if (this.stopped) return;
    if (old !== undefined && next !== undefined) {
      if (sameTaints(noExecuteTaints(old), noExecuteTaints(next))) return;
    }
    this.handleNodeUpdate((next ?? old)?.metadata.name ?? '');
  }

  podChanged(old: Pod | undefined, next: Pod | undefined): void {
    if (this.stopped) return;
    if (old !== undefined && next !== undefined && old.metadata.uid !== next.metadata.uid) {
      // A new pod under the old name (its deletion was missed, e.g. across a
      // re-list): the old pod's countdown is not the new one's.
      this.cancel(podKey(old), undefined);
    } else if (
      old !== undefined &&
      next !== undefined &&
      old.spec.nodeName === next.spec.nodeName &&
      sameTolerations(old.spec.tolerations, next.spec.tolerations)
    ) {
      return;
    }
    const pod = next ?? old;
    if (pod === undefined) return;
    this.handlePodUpdate(podKey(pod), pod.spec.nodeName ?? '');
  }

  private handlePodUpdate(key: string, nodeName: string): void {
    const pod = this.cache.pod(key);
    if (pod === undefined) {
      this.cancel(key, undefined);
      return;
    }
    if ((pod.spec.nodeName ?? '') !== nodeName || nodeName === '') return;
    const taints = this.taintedNodes.get(nodeName);
    if (taints === undefined) return;
    this.processPodOnNode(pod, nodeName, taints, this.clock.now());
  }

  private handleNodeUpdate(nodeName: string): void {
    const node = this.cache.node(nodeName);
    if (node === undefined) {
      this.taintedNodes.delete(nodeName);
      return;
    }
    const taints = noExecuteTaints(node);
    if (taints.length === 0) this.taintedNodes.delete(nodeName);
    else this.taintedNodes.set(nodeName, taints);
    const pods = this.cache.podsOnNode(nodeName);
    if (pods.length === 0) return;
    if (taints.length === 0) {
      for (const pod of pods) this.cancel(podKey(pod), pod);
      return;
    }
    const now = this.clock.now();
    for (const pod of pods) this.processPodOnNode(pod, nodeName, taints, now);
  }

  private processPodOnNode(pod: Pod, nodeName: string, taints: Taint[], now: number): void {
    const key = podKey(pod);
    if (taints.length === 0) this.cancel(key, pod);
    const { allTolerated, used } = matchingTolerations(taints, pod.spec.tolerations ?? []);
    if (!allTolerated) {
      this.logger.info(
        { pod: key, node: nodeName },
        'not all NoExecute taints tolerated; evicting now',
      );
      this.cancel(key, pod);
      this.schedule(key, pod.metadata.uid, now, now);
      return;
    }
    const min = minTolerationMs(used);
    if (min < 0) {
      // Tolerates forever.
      this.cancel(key, pod);
      return;
    }
    const existing = this.scheduled.get(key);
    if (existing !== undefined) {
      // Upstream keeps a running countdown: it started earlier, so it ends earlier.
      if (existing.done || existing.createdAt + min < now + min) return;
      this.cancel(key, pod);
    }
    this.schedule(key, pod.metadata.uid, now, now + min);
  }

  private schedule(key: string, uid: string, createdAt: number, fireAt: number): void {
    if (this.scheduled.has(key)) return;
    const entry: ScheduledEviction = { uid, createdAt, fireAt, timer: undefined, done: false };
    this.scheduled.set(key, entry);
    entry.timer = this.clock.setTimer(fireAt - this.clock.now(), () => {
      entry.timer = undefined;
      this.spawn(() => this.evict(key, entry));
    });
  }

  private cancel(key: string, pod: Pod | undefined): void {
    const entry = this.scheduled.get(key);
    if (entry === undefined) return;
    entry.timer?.cancel();
    this.scheduled.delete(key);
    if (!entry.done && pod !== undefined) {
      this.recordPodEvent(pod, `Cancelling deletion of Pod ${key}`);
    }
  }

  private async evict(key: string, entry: ScheduledEviction): Promise<void> {
    if (this.stopped || this.scheduled.get(key) !== entry) return;
    const pod = this.cache.pod(key);
    if (pod === undefined || pod.metadata.uid !== entry.uid) {
      this.scheduled.delete(key);
      return;
    }
    if (pod.metadata.deletionTimestamp !== undefined) {
      // Already on its way out (evicted before, by us or a previous leader).
      entry.done = true;
      return;
    }
    this.logger.info({ pod: key, node: pod.spec.nodeName }, 'deleting pod for NoExecute taint');
    this.recordPodEvent(pod, `Marking for deletion Pod ${key}`);
    let lastErr: unknown;
    for (let attempt = 0; attempt < DELETE_RETRIES; attempt++) {
      if (this.stopped) return;
      try {
        const outcome = await this.writer.evictPod(pod, formatTime(this.clock.now()));
        if (outcome === 'deleted') this.metrics.podEvictions.inc();
        entry.done = true;
        return;
      } catch (err) {
        lastErr = err;
      }
    }
    this.metrics.writeErrors.inc({ operation: 'pod_eviction' });
    this.logger.error({ pod: key, err: lastErr }, 'evicting pod failed');
    // Forget it, so the next change of the pod or node schedules it again.
    if (this.scheduled.get(key) === entry) this.scheduled.delete(key);
  }

  private recordPodEvent(pod: Pod, message: string): void {
    this.writer.recordEvent({
      involved: podReference(pod),
      type: 'Normal',
      reason: 'TaintManagerEviction',
      message,
      component: TAINT_EVICTION_COMPONENT,
    });
  }
}

function sameTaints(a: Taint[], b: Taint[]): boolean {
  if (a.length !== b.length) return false;
  return a.every(
    (t, i) =>
      t.key === b[i]?.key &&
      t.effect === b[i]?.effect &&
      t.value === b[i]?.value &&
      t.timeAdded === b[i]?.timeAdded,
  );
}

function sameTolerations(a: Toleration[] | undefined, b: Toleration[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  if (x.length !== y.length) return false;
  return x.every(
    (t, i) =>
      t.key === y[i]?.key &&
      t.operator === y[i]?.operator &&
      t.value === y[i]?.value &&
      t.effect === y[i]?.effect &&
      t.tolerationSeconds === y[i]?.tolerationSeconds,
  );
}
