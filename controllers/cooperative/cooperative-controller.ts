import type { Logger } from 'pino';
import { podReference, type ClusterWriter } from '../actuator/cluster-writer.ts';
import { readAutonomy } from '../autonomy/annotations.ts';
import type { AutonomyTracker } from '../autonomy/autonomy-tracker.ts';
import { autonomyState } from '../autonomy/edge-autonomy.ts';
import { reconcileEdgeAutonomy } from '../autonomy/edge-autonomy-reconciler.ts';
import type { ControllerDeps } from '../controller-deps.ts';
import type { Clock } from '../clock.ts';
import type { EcmMetrics } from '../ecm-metrics.ts';
import type { ClusterCache } from '../kube/cluster-cache.ts';
import type { Node, Pod } from '../kube/objects.ts';
import { findCondition, podKey } from '../kube/objects.ts';
import {
  ANNOTATION_ORIGINAL_TOLERATIONS,
  CONDITION_EDGE_AUTONOMY,
  CONDITION_READY,
} from '../kube/well-known.ts';
import { KeyedWorkQueue, type WorkOutcome } from '../work-queue.ts';
import type { Spawn } from '../work-tracker.ts';
import { planTolerations } from './toleration-plan.ts';

const COMPONENT = 'edgebox-ecm';
const POD_WORKERS = 4;

export interface CooperativeDeps extends ControllerDeps {
  autonomy: AutonomyTracker;
  spawn: Spawn;
}

/**
 * Cooperative mode: a stock node lifecycle controller keeps marking nodes and
 * evicting by taints; this one makes the pods of autonomous nodes tolerate
 * the not-ready/unreachable NoExecute taints for the autonomy duration longer
 * (original tolerations kept in an annotation and restored when autonomy
 * goes), and keeps each annotated node's EdgeAutonomy condition current from
 * the Ready condition the stock controller maintains.
 */
export class CooperativeController {
  private readonly cache: ClusterCache;
  private readonly clock: Clock;
  private readonly writer: ClusterWriter;
  private readonly metrics: EcmMetrics;
  private readonly logger: Logger;
  private readonly autonomy: AutonomyTracker;
  private readonly queue: KeyedWorkQueue;
  private readonly leftAloneLogged = new Set<string>();

  constructor(deps: CooperativeDeps) {
    this.cache = deps.cache;
    this.clock = deps.clock;
    this.writer = deps.writer;
    this.metrics = deps.metrics;
    this.logger = deps.logger;
    this.autonomy = deps.autonomy;
    this.queue = new KeyedWorkQueue(
      POD_WORKERS,
      (key) => this.reconcilePod(key),
      deps.spawn,
      deps.clock,
    );
  }

  /** Looks at every pod that is on an autonomous node or carries saved originals. */
  start(): void {
    for (const pod of this.cache.pods()) {
      if (this.mayNeedWork(pod)) this.queue.add(podKey(pod));
    }
  }

  stop(): void {
    this.queue.stop();
  }

  nodeChanged(old: Node | undefined, next: Node | undefined): void {
    const before = old === undefined ? undefined : JSON.stringify(readAutonomy(old));
    const after = next === undefined ? undefined : JSON.stringify(readAutonomy(next));
    if (before === after) return;
    const name = (next ?? old)?.metadata.name;
    if (name === undefined) return;
    for (const pod of this.cache.podsOnNode(name)) this.queue.add(podKey(pod));
  }

  podChanged(_old: Pod | undefined, next: Pod | undefined): void {
    if (next !== undefined && this.mayNeedWork(next)) this.queue.add(podKey(next));
  }

  /** Keeps EdgeAutonomy current on every node that is, or was, autonomous. */
  async edgeAutonomyPass(): Promise<void> {
    const now = this.clock.now();
    for (const node of this.cache.nodes()) {
      const setting = this.autonomy.settingFor(node);
      const hasCondition =
        findCondition(node.status.conditions, CONDITION_EDGE_AUTONOMY) !== undefined;
      if (setting.kind !== 'autonomous' && !hasCondition) continue;
      const ready = findCondition(node.status.conditions, CONDITION_READY);
      const state = autonomyState(setting, ready, now);
      await reconcileEdgeAutonomy(this.writer, this.logger, node, setting, state, ready, now);
    }
  }

  private mayNeedWork(pod: Pod): boolean {
    if (pod.metadata.annotations?.[ANNOTATION_ORIGINAL_TOLERATIONS] !== undefined) return true;
    const nodeName = pod.spec.nodeName;
    if (nodeName === undefined || nodeName === '') return false;
    const node = this.cache.node(nodeName);
    return node !== undefined && readAutonomy(node).kind === 'autonomous';
  }

  private async reconcilePod(key: string): Promise<WorkOutcome> {
    const pod = this.cache.pod(key);
    if (pod === undefined) return 'done';
    const nodeName = pod.spec.nodeName;
    const node = nodeName === undefined ? undefined : this.cache.node(nodeName);
    const setting = node === undefined ? undefined : this.autonomy.settingFor(node);
    const autonomyMs = setting?.kind === 'autonomous' ? setting.durationMs : undefined;
    const plan = planTolerations(pod, autonomyMs);
    if (plan.kind === 'unchanged') return 'done';
    if (plan.kind === 'leave') {
      if (autonomyMs !== undefined && !this.leftAloneLogged.has(key)) {
        this.leftAloneLogged.add(key);
        this.logger.info({ pod: key, node: nodeName, why: plan.why }, 'pod left alone');
      }
      return 'done';
    }
    try {
      const result = await this.writer.rewritePodTolerations(
        pod,
        plan.tolerations,
        plan.annotation,
      );
      if (result === 'gone') return 'done';
      this.metrics.tolerationRewrites.inc({ operation: plan.operation });
      this.logger.info(
        { pod: key, node: nodeName, operation: plan.operation },
        'pod tolerations rewritten',
      );
      this.writer.recordEvent({
        involved: podReference(pod),
        type: 'Normal',
        reason:
          plan.operation === 'protect'
            ? 'AutonomyTolerationsExtended'
            : 'AutonomyTolerationsRestored',
        message:
          plan.operation === 'protect'
            ? `NoExecute not-ready/unreachable tolerations extended for node ${nodeName ?? ''} autonomy (originals in ${ANNOTATION_ORIGINAL_TOLERATIONS})`
            : 'NoExecute not-ready/unreachable tolerations restored to their originals',
        component: COMPONENT,
      });
    } catch (err) {
      this.metrics.writeErrors.inc({ operation: 'pod_tolerations' });
      this.logger.error({ pod: key, err }, 'rewriting pod tolerations failed; will retry');
      // Conflicts resolve once the cache has the newer pod; try again then.
      return 'retry';
    }
    return 'done';
  }
}
