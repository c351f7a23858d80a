import type { Logger } from 'pino';
import {
  nodeReference,
  podReference,
  type ClusterWriter,
  type TaintUpdate,
} from '../actuator/cluster-writer.ts';
import type { AutonomyTracker } from '../autonomy/autonomy-tracker.ts';
import { autonomyState, isProtected, type AutonomyState } from '../autonomy/edge-autonomy.ts';
import { reconcileEdgeAutonomy } from '../autonomy/edge-autonomy-reconciler.ts';
import type { Clock } from '../clock.ts';
import type { ControllerDeps } from '../controller-deps.ts';
import type { EcmMetrics } from '../ecm-metrics.ts';
import type { ClusterCache } from '../kube/cluster-cache.ts';
import type { Node, NodeCondition, Pod, Taint } from '../kube/objects.ts';
import { findCondition, formatTime } from '../kube/objects.ts';
import {
  CONDITION_READY,
  LABEL_ARCH,
  LABEL_ARCH_BETA,
  LABEL_OS,
  LABEL_OS_BETA,
  POD_CONDITION_READY,
} from '../kube/well-known.ts';
import { parallelize } from '../parallel.ts';
import type { WorkOutcome } from '../work-queue.ts';
import { decideNodeHealth, type NodeHealth } from './node-health.ts';
import { RateLimitedTimedQueue, type TimedValue, type TryResult } from './rate-limited-queue.ts';
import {
  NOT_READY_NO_EXECUTE,
  UNREACHABLE_NO_EXECUTE,
  noScheduleTaintDiff,
  taintExists,
} from './taints.ts';
import {
  computeZoneState,
  isExcludedFromDisruption,
  zoneDisplayName,
  zoneEvictionQps,
  zoneKey,
  type ZoneState,
} from './zones.ts';

/** The component name upstream's node lifecycle controller reports Events as. */
export const NODE_CONTROLLER_COMPONENT = 'node-controller';

/** Upstream's nodeUpdateWorkerSize. */
const NODE_UPDATE_WORKERS = 8;
/** Upstream retries a node status write this many times, re-reading the node in between. */
const NODE_STATUS_UPDATE_RETRY = 5;
/** How long the tainting queue waits for a node that has no Ready condition yet. */
const NO_READY_CONDITION_RETRY_MS = 50;

export interface NodeLifecycleOptions {
  nodeMonitorGracePeriodMs: number;
  nodeStartupGracePeriodMs: number;
  evictionQps: number;
  secondaryEvictionQps: number;
  largeClusterThreshold: number;
  unhealthyZoneThreshold: number;
}

export interface NodeLifecycleDeps extends ControllerDeps {
  autonomy: AutonomyTracker;
  options: NodeLifecycleOptions;
}

/** Which state each node was in at the end of the last pass (for /metrics and the benchmark). */
export type NodeState =
  'ready' | 'not_ready' | 'unreachable' | 'running_offline' | 'autonomy_expired';

/**
 * Upstream's node lifecycle controller with one change: an autonomous node
 * that is unreachable within its autonomy keeps its pods (no NoExecute taint,
 * pods not marked NotReady), while its conditions and NoSchedule taint tell
 * the truth. Every other node is handled exactly as kube-controller-manager
 * does: health from heartbeats, NoSchedule taints from conditions,
 * rate-limited NoExecute tainting per zone, zone disruption states.
 *
 * Decisions read the cache and this object's memory; changes go through the
 * ClusterWriter. Passes are driven from outside (EcmCore) on the Clock.
 */
export class NodeLifecycleController {
  private readonly cache: ClusterCache;
  private readonly clock: Clock;
  private readonly writer: ClusterWriter;
  private readonly metrics: EcmMetrics;
  private readonly logger: Logger;
  private readonly autonomy: AutonomyTracker;
  private readonly options: NodeLifecycleOptions;

  private readonly knownNodes = new Map<string, Node>();
  private readonly health = new Map<string, NodeHealth>();
  private readonly zoneStates = new Map<string, ZoneState>();
  private readonly zoneTainters = new Map<string, RateLimitedTimedQueue>();
  private readonly nodesToRetry = new Set<string>();
  /** Nodes that left Ready while protected by autonomy: their pods get marked NotReady once it ends. */
  private readonly deferredPodMarking = new Set<string>();
  private readonly lastStates = new Map<string, NodeState>();

  constructor(deps: NodeLifecycleDeps) {
    this.cache = deps.cache;
    this.clock = deps.clock;
    this.writer = deps.writer;
    this.metrics = deps.metrics;
    this.logger = deps.logger;
    this.autonomy = deps.autonomy;
    this.options = deps.options;
  }

  /** Zone states after the last pass, keyed by zone display name. */
  zoneStateSnapshot(): Map<string, ZoneState> {
    const out = new Map<string, ZoneState>();
    for (const [k, v] of this.zoneStates) out.set(zoneDisplayName(k), v);
    return out;
  }

  /** Tainting rate (tokens/s) each zone currently runs at, keyed by display name. */
  zoneRateSnapshot(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [k, q] of this.zoneTainters) out.set(zoneDisplayName(k), q.qps);
    return out;
  }

  nodeStates(): ReadonlyMap<string, NodeState> {
    return this.lastStates;
  }

  // ---- the monitor pass ---------------------------------------------------

  /**
   * One pass of upstream's monitorNodeHealth: classify nodes, update each
   * one's health (writing Unknown conditions when its grace ran out), decide
   * its NoExecute taint and its pods' readiness, then recompute zone states.
   */
  async monitorNodeHealth(): Promise<void> {
    const started = performance.now();
    const nodes = this.cache.nodes();
    const { added, deleted, newZoneRepresentatives } = this.classifyNodes(nodes);
    for (const node of newZoneRepresentatives) this.addZone(node);
    const firstSeen = new Set<string>();
    for (const node of added) {
      const name = node.metadata.name;
      this.logger.info({ node: name }, 'observed a new node');
      this.recordNodeEvent(
        node,
        'Normal',
        'RegisteredNode',
        `Registered Node ${name} in Controller`,
      );
      this.knownNodes.set(name, node);
      firstSeen.add(name);
      this.addZone(node);
      // A controller that (re)starts takes no NoExecute taint on trust: the
      // node is re-queued below and re-tainted at the zone's rate.
      await this.markNodeAsReachable(node);
    }
    for (const node of deleted) {
      const name = node.metadata.name;
      this.logger.info({ node: name }, 'observed a node deletion');
      this.recordNodeEvent(node, 'Normal', 'RemovingNode', `Removing Node ${name} from Controller`);
      this.knownNodes.delete(name);
      this.health.delete(name);
      this.deferredPodMarking.delete(name);
      this.nodesToRetry.delete(name);
      this.lastStates.delete(name);
      this.autonomy.forget(name);
    }

    const zoneToReady = new Map<string, (NodeCondition | undefined)[]>();
    await parallelize(nodes, NODE_UPDATE_WORKERS, (node) =>
      this.updateNode(node, zoneToReady, firstSeen.has(node.metadata.name)),
    );
    await this.handleDisruption(zoneToReady, nodes);
    this.publishNodeStates();
    this.metrics.monitorPassSeconds.observe((performance.now() - started) / 1000);
  }

  private async updateNode(
    listed: Node,
    zoneToReady: Map<string, (NodeCondition | undefined)[]>,
    firstSeen: boolean,
  ): Promise<void> {
    const name = listed.metadata.name;
    let node = listed;
    let observedReady: NodeCondition;
    let currentReady: NodeCondition | undefined;
    for (let attempt = 1; ; attempt++) {
      const decision = decideNodeHealth(
        node,
        this.cache.lease(name),
        this.health.get(name),
        this.clock.now(),
        {
          monitorGraceMs: this.options.nodeMonitorGracePeriodMs,
          startupGraceMs: this.options.nodeStartupGracePeriodMs,
        },
      );
      this.health.set(name, decision.health);
      observedReady = decision.observedReady;
      currentReady = decision.currentReady;
      if (decision.update === undefined) break;
      try {
        await this.writer.patchNodeConditions(
          name,
          decision.update.conditions,
          node.metadata.resourceVersion,
        );
        this.health.set(name, decision.update.healthAfterWrite);
        node = withConditions(node, decision.update.conditions);
        this.logger.info(
          { node: name, ready: currentReady?.status },
          'node stopped posting status; conditions set to Unknown',
        );
        break;
      } catch (err) {
        this.metrics.writeErrors.inc({ operation: 'node_status' });
        if (attempt >= NODE_STATUS_UPDATE_RETRY) {
          this.logger.error(
            { node: name, err },
            'updating node health failed; skipping the node this pass, no pods will be evicted',
          );
          return;
        }
        const fresh = await this.writer.getNode(name).catch((e: unknown) => {
          this.logger.error(
            { node: name, err: e },
            'reading the node to retry its health update failed',
          );
          return undefined;
        });
        if (fresh === undefined) return;
        node = fresh;
      }
    }

    if (!isExcludedFromDisruption(node)) {
      const zone = zoneKey(node);
      let list = zoneToReady.get(zone);
      if (list === undefined) {
        list = [];
        zoneToReady.set(zone, list);
      }
      list.push(currentReady);
    }
    if (currentReady === undefined) {
      this.nodesToRetry.delete(name);
      return;
    }

    const now = this.clock.now();
    const setting = this.autonomy.settingFor(node);
    const state = autonomyState(setting, currentReady, now);
    this.lastStates.set(name, nodeStateOf(currentReady, state));

    await this.processTaintBasedEviction(node, observedReady, state);

    const needsRetry = this.nodesToRetry.has(name);
    const leftReady = currentReady.status !== 'True' && observedReady.status === 'True';
    if (leftReady) {
      this.recordNodeEvent(
        node,
        'Normal',
        'NodeNotReady',
        `Node ${name} status is now: NodeNotReady`,
      );
    }
    if (firstSeen && setting.kind === 'autonomous' && currentReady.status !== 'True') {
      // A new leader does not know whether its predecessor marked these pods
      // (it would not have while the node was protected): check once it may.
      this.deferredPodMarking.add(name);
    }
    if (leftReady || (needsRetry && observedReady.status !== 'True')) {
      if (isProtected(state)) {
        this.deferredPodMarking.add(name);
      } else if (!(await this.markPodsNotReady(this.cache.podsOnNode(name), name))) {
        this.nodesToRetry.add(name);
        return;
      }
    } else if (
      this.deferredPodMarking.has(name) &&
      !isProtected(state) &&
      currentReady.status !== 'True'
    ) {
      this.logger.info(
        { node: name, autonomy: state.kind },
        'autonomy over; marking pods NotReady',
      );
      if (!(await this.markPodsNotReady(this.cache.podsOnNode(name), name))) {
        this.nodesToRetry.add(name);
        return;
      }
      this.deferredPodMarking.delete(name);
    }
    if (currentReady.status === 'True') this.deferredPodMarking.delete(name);

    await reconcileEdgeAutonomy(this.writer, this.logger, node, setting, state, currentReady, now);
    this.nodesToRetry.delete(name);
  }

  /** Upstream's processTaintBaseEviction, keeping NoExecute taints off protected nodes. */
  private async processTaintBasedEviction(
    node: Node,
    observedReady: NodeCondition,
    state: AutonomyState,
  ): Promise<void> {
    const name = node.metadata.name;
    const taints = node.spec.taints;
    switch (observedReady.status) {
      case 'False':
        if (taintExists(taints, UNREACHABLE_NO_EXECUTE)) {
          // Swap at once: the two NoExecute taints mirror Ready and are exclusive.
          await this.swapTaints(node, NOT_READY_NO_EXECUTE, UNREACHABLE_NO_EXECUTE, 'instant swap');
        } else {
          this.markNodeForTainting(node, 'False');
        }
        break;
      case 'Unknown':
        if (isProtected(state)) {
          this.tainter(node).remove(name);
          const present = [UNREACHABLE_NO_EXECUTE, NOT_READY_NO_EXECUTE].filter((t) =>
            taintExists(taints, t),
          );
          if (present.length > 0) {
            this.logger.info({ node: name }, 'autonomous node: removing NoExecute taint');
            await this.changeTaints(node, [], present);
          }
        } else if (taintExists(taints, NOT_READY_NO_EXECUTE)) {
          await this.swapTaints(node, UNREACHABLE_NO_EXECUTE, NOT_READY_NO_EXECUTE, 'instant swap');
        } else {
          this.markNodeForTainting(node, 'Unknown');
        }
        break;
      case 'True':
        await this.markNodeAsReachable(node);
        break;
    }
  }

  private markNodeForTainting(node: Node, status: 'False' | 'Unknown'): boolean {
    const queue = this.tainter(node);
    const name = node.metadata.name;
    const template = status === 'False' ? NOT_READY_NO_EXECUTE : UNREACHABLE_NO_EXECUTE;
    if (!taintExists(node.spec.taints, template)) queue.remove(name);
    return queue.add(name, node.metadata.uid);
  }

  /** Removes both NoExecute taints (when present) and forgets the node in its zone's queue. */
  private async markNodeAsReachable(node: Node): Promise<boolean> {
    const present = [UNREACHABLE_NO_EXECUTE, NOT_READY_NO_EXECUTE].filter((t) =>
      taintExists(node.spec.taints, t),
    );
    if (present.length > 0 && !(await this.changeTaints(node, [], present))) return false;
    return this.tainter(node).remove(node.metadata.name);
  }

  // ---- rate-limited NoExecute tainting --------------------------------------

  /** True when some zone has nodes waiting for a NoExecute taint. */
  hasNodesToTaint(): boolean {
    for (const q of this.zoneTainters.values()) if (q.length > 0) return true;
    return false;
  }

  /** Upstream's doNoExecuteTaintingPass: each zone's queue taints nodes as its limiter allows. */
  async doNoExecuteTaintingPass(): Promise<void> {
    for (const [zone, queue] of this.zoneTainters) {
      await queue.tryProcess((v) => this.taintQueuedNode(zone, v));
    }
  }

  private async taintQueuedNode(zone: string, v: TimedValue): Promise<TryResult> {
    const node = this.cache.node(v.value);
    if (node === undefined) return { done: true, retryAfterMs: 0 };
    const ready = findCondition(node.status.conditions, CONDITION_READY);
    if (ready === undefined) return { done: false, retryAfterMs: NO_READY_CONDITION_RETRY_MS };
    let add: Taint;
    let opposite: Taint;
    if (ready.status === 'False') {
      add = NOT_READY_NO_EXECUTE;
      opposite = UNREACHABLE_NO_EXECUTE;
    } else if (ready.status === 'Unknown') {
      if (isProtected(autonomyState(this.autonomy.settingFor(node), ready, this.clock.now()))) {
        // Became autonomous while waiting in the queue.
        return { done: true, retryAfterMs: 0 };
      }
      add = UNREACHABLE_NO_EXECUTE;
      opposite = NOT_READY_NO_EXECUTE;
    } else {
      return { done: true, retryAfterMs: 0 };
    }
    const ok = await this.swapTaints(node, add, opposite, 'rate-limited');
    if (ok) this.metrics.nodeEvictions.inc({ zone: zoneDisplayName(zone) });
    return { done: ok, retryAfterMs: 0 };
  }

  // ---- NoSchedule taints and labels (node add/update events) -------------------

  /** Upstream's doNoScheduleTaintingPass: NoSchedule taints follow the conditions and spec.unschedulable. */
  async doNoScheduleTaintingPass(nodeName: string): Promise<void> {
    const node = this.cache.node(nodeName);
    if (node === undefined) return;
    const { add, remove } = noScheduleTaintDiff(node);
    if (add.length === 0 && remove.length === 0) return;
    const now = formatTime(this.clock.now());
    await this.changeTaints(
      node,
      add.map((t) => ({ ...t, timeAdded: now })),
      remove,
    );
  }

  /** Upstream's reconcileNodeLabels: the beta os/arch labels follow the stable ones. */
  async reconcileNodeLabels(nodeName: string): Promise<void> {
    const node = this.cache.node(nodeName);
    const labels = node?.metadata.labels;
    if (labels === undefined) return;
    const update: Record<string, string> = {};
    for (const [primary, secondary] of [
      [LABEL_OS, LABEL_OS_BETA],
      [LABEL_ARCH, LABEL_ARCH_BETA],
    ] as const) {
      const value = labels[primary];
      if (value !== undefined && labels[secondary] !== value) update[secondary] = value;
    }
    if (Object.keys(update).length === 0) return;
    try {
      await this.writer.patchNodeLabels(nodeName, update);
    } catch (err) {
      this.metrics.writeErrors.inc({ operation: 'node_labels' });
      this.logger.error({ node: nodeName, err }, 'reconciling node labels failed');
    }
  }

  // ---- pods ------------------------------------------------------------------

  /**
   * A pod was bound to a node (or first seen): if that node is not Ready,
   * mark the pod NotReady at once (upstream's processPod), unless the node
   * is protected by autonomy. A failed write is retried, as upstream
   * re-queues the pod rate-limited: nothing else would mark it later.
   */
  async processPod(key: string): Promise<WorkOutcome> {
    const pod = this.cache.pod(key);
    const nodeName = pod?.spec.nodeName;
    if (pod === undefined || nodeName === undefined || nodeName === '') return 'done';
    const health = this.health.get(nodeName);
    const node = this.cache.node(nodeName);
    const ready = health?.savedReady;
    if (node === undefined || ready === undefined || ready.status === 'True') return 'done';
    const state = autonomyState(this.autonomy.settingFor(node), ready, this.clock.now());
    if (isProtected(state)) {
      this.deferredPodMarking.add(nodeName);
      return 'done';
    }
    return (await this.markPodsNotReady([pod], nodeName)) ? 'done' : 'retry';
  }

  /** Upstream's MarkPodsNotReady; false when any write failed (the node is retried next pass). */
  private async markPodsNotReady(pods: Pod[], nodeName: string): Promise<boolean> {
    let ok = true;
    const now = formatTime(this.clock.now());
    for (const pod of pods) {
      if (pod.spec.nodeName !== nodeName) continue;
      const ready = findCondition(pod.status.conditions, POD_CONDITION_READY);
      if (ready === undefined || ready.status === 'False') continue;
      try {
        const result = await this.writer.markPodNotReady(pod, now);
        if (result === 'gone') continue;
        this.writer.recordEvent({
          involved: podReference(pod),
          type: 'Warning',
          reason: 'NodeNotReady',
          message: 'Node is not ready',
          component: NODE_CONTROLLER_COMPONENT,
        });
      } catch (err) {
        ok = false;
        this.metrics.writeErrors.inc({ operation: 'pod_status' });
        this.logger.error(
          { pod: `${pod.metadata.namespace}/${pod.metadata.name}`, node: nodeName, err },
          'marking pod NotReady failed',
        );
      }
    }
    return ok;
  }

  // ---- zones -------------------------------------------------------------------

  /** Upstream's handleDisruption: per-zone states and rates; all zones down stops all tainting. */
  private async handleDisruption(
    zoneToReady: Map<string, (NodeCondition | undefined)[]>,
    nodes: Node[],
  ): Promise<void> {
    const newStates = new Map<string, ZoneState>();
    let allAreFullyDisrupted = true;
    for (const [zone, readies] of zoneToReady) {
      const { notReady, state } = computeZoneState(readies, this.options.unhealthyZoneThreshold);
      const display = zoneDisplayName(zone);
      this.metrics.zoneSize.set({ zone: display }, readies.length);
      this.metrics.zoneUnhealthyNodes.set({ zone: display }, notReady);
      if (state !== 'FullDisruption') allAreFullyDisrupted = false;
      newStates.set(zone, state);
      if (!this.zoneStates.has(zone)) {
        this.logger.warn({ zone: display }, 'setting initial state for unseen zone');
        this.zoneStates.set(zone, 'Initial');
        this.ensureTainter(zone);
      }
    }

    let allWasFullyDisrupted = true;
    for (const [zone, state] of [...this.zoneStates]) {
      if (!zoneToReady.has(zone)) {
        const display = zoneDisplayName(zone);
        this.metrics.zoneSize.set({ zone: display }, 0);
        this.metrics.zoneUnhealthyNodes.set({ zone: display }, 0);
        this.metrics.zoneState.remove({ zone: display, state });
        this.zoneStates.delete(zone);
        continue;
      }
      if (state !== 'FullDisruption') allWasFullyDisrupted = false;
    }

    if (allAreFullyDisrupted && allWasFullyDisrupted) return;
    if (allAreFullyDisrupted) {
      this.logger.warn(
        'all nodes are not Ready: entering master disruption mode, no NoExecute taints',
      );
      for (const node of nodes) {
        await this.markNodeAsReachable(node);
      }
      for (const zone of this.zoneStates.keys()) {
        this.ensureTainter(zone).swapLimiter(0);
        this.setZoneState(zone, 'FullDisruption');
      }
      return;
    }
    if (allWasFullyDisrupted) {
      this.logger.info('some nodes are Ready again: exiting master disruption mode');
      // Everyone gets a fresh grace period: heartbeats could not be judged meanwhile.
      const now = this.clock.now();
      for (const node of nodes) {
        const h = this.health.get(node.metadata.name);
        if (h !== undefined) {
          h.probeTimestamp = now;
          h.readyTransitionTimestamp = now;
        }
      }
      for (const zone of this.zoneStates.keys()) {
        const state = newStates.get(zone) as ZoneState;
        this.setLimiterInZone(zone, zoneToReady.get(zone)?.length ?? 0, state);
        this.setZoneState(zone, state);
      }
      return;
    }
    for (const [zone, old] of this.zoneStates) {
      const state = newStates.get(zone) as ZoneState;
      if (old === state) continue;
      this.logger.info({ zone: zoneDisplayName(zone), from: old, to: state }, 'zone changed state');
      this.setLimiterInZone(zone, zoneToReady.get(zone)?.length ?? 0, state);
      this.setZoneState(zone, state);
    }
  }

  private setLimiterInZone(zone: string, size: number, state: ZoneState): void {
    this.ensureTainter(zone).swapLimiter(zoneEvictionQps(state, size, this.options));
  }

  private setZoneState(zone: string, state: ZoneState): void {
    const display = zoneDisplayName(zone);
    const old = this.zoneStates.get(zone);
    if (old !== undefined && old !== state)
      this.metrics.zoneState.remove({ zone: display, state: old });
    this.zoneStates.set(zone, state);
    this.metrics.zoneState.set({ zone: display, state }, 1);
  }

  private classifyNodes(all: Node[]): {
    added: Node[];
    deleted: Node[];
    newZoneRepresentatives: Node[];
  } {
    const added: Node[] = [];
    const newZoneRepresentatives: Node[] = [];
    for (const node of all) {
      if (!this.knownNodes.has(node.metadata.name)) added.push(node);
      else if (!this.zoneStates.has(zoneKey(node))) newZoneRepresentatives.push(node);
    }
    const deleted: Node[] = [];
    if (this.knownNodes.size + added.length !== all.length) {
      const present = new Set(all.map((n) => n.metadata.name));
      for (const [name, node] of this.knownNodes) if (!present.has(name)) deleted.push(node);
    }
    return { added, deleted, newZoneRepresentatives };
  }

  private addZone(node: Node): void {
    const zone = zoneKey(node);
    if (this.zoneStates.has(zone)) return;
    this.zoneStates.set(zone, 'Initial');
    this.ensureTainter(zone);
    this.metrics.nodeEvictions.inc({ zone: zoneDisplayName(zone) }, 0);
    this.logger.info(
      { zone: zoneDisplayName(zone) },
      'initializing eviction rate limiter for zone',
    );
  }

  private ensureTainter(zone: string): RateLimitedTimedQueue {
    let q = this.zoneTainters.get(zone);
    if (q === undefined) {
      q = new RateLimitedTimedQueue(this.options.evictionQps, this.clock);
      this.zoneTainters.set(zone, q);
    }
    return q;
  }

  private tainter(node: Node): RateLimitedTimedQueue {
    return this.ensureTainter(zoneKey(node));
  }

  // ---- writes ------------------------------------------------------------------

  /** Adds one NoExecute taint (stamped with timeAdded) and removes its opposite. */
  private async swapTaints(node: Node, add: Taint, remove: Taint, why: string): Promise<boolean> {
    const stamped = { ...add, timeAdded: formatTime(this.clock.now()) };
    this.logger.info(
      { node: node.metadata.name, add: add.key, remove: remove.key, why },
      'tainting node',
    );
    return this.changeTaints(node, [stamped], [remove]);
  }

  private async changeTaints(node: Node, add: Taint[], remove: Taint[]): Promise<boolean> {
    let result: TaintUpdate | 'gone';
    try {
      result = await this.writer.updateNodeTaints(node.metadata.name, add, remove);
    } catch (err) {
      this.metrics.writeErrors.inc({ operation: 'node_taints' });
      this.logger.error(
        {
          node: node.metadata.name,
          add: add.map((t) => t.key),
          remove: remove.map((t) => t.key),
          err,
        },
        'changing node taints failed; will retry',
      );
      return false;
    }
    if (result === 'gone') return true;
    for (const t of result.added) {
      this.metrics.taintChanges.inc({ key: t.key, effect: t.effect, operation: 'add' });
    }
    for (const t of result.removed) {
      this.metrics.taintChanges.inc({ key: t.key, effect: t.effect, operation: 'remove' });
    }
    return true;
  }

  private recordNodeEvent(
    node: Node,
    type: 'Normal' | 'Warning',
    reason: string,
    text: string,
  ): void {
    this.writer.recordEvent({
      involved: nodeReference(node),
      type,
      reason,
      message: reason === 'NodeNotReady' ? text : `Node ${node.metadata.name} event: ${text}`,
      component: NODE_CONTROLLER_COMPONENT,
    });
  }

  private publishNodeStates(): void {
    const counts: Record<NodeState, number> = {
      ready: 0,
      not_ready: 0,
      unreachable: 0,
      running_offline: 0,
      autonomy_expired: 0,
    };
    for (const s of this.lastStates.values()) counts[s]++;
    for (const [state, n] of Object.entries(counts)) this.metrics.nodesByState.set({ state }, n);
  }
}

function nodeStateOf(ready: NodeCondition, state: AutonomyState): NodeState {
  if (ready.status === 'True') return 'ready';
  if (ready.status === 'False') return 'not_ready';
  if (state.kind === 'running-offline') return 'running_offline';
  if (state.kind === 'expired') return 'autonomy_expired';
  return 'unreachable';
}

/** The node as it is after a conditions patch (merged by type), for the rest of the pass. */
function withConditions(node: Node, changed: NodeCondition[]): Node {
  const conditions = [...(node.status.conditions ?? [])];
  for (const c of changed) {
    const i = conditions.findIndex((x) => x.type === c.type);
    if (i === -1) conditions.push(c);
    else conditions[i] = c;
  }
  return { ...node, status: { ...node.status, conditions } };
}
