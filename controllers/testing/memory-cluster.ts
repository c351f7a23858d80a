import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { silentLogger } from '../../src/log.ts';
import { createMetricsRegistry } from '../../src/metrics.ts';
import { MemoryWriter } from '../actuator/memory-writer.ts';
import { FakeClock } from '../clock.ts';
import { defaultEcmConfig, type EcmConfig } from '../config.ts';
import { EcmCore } from '../ecm-core.ts';
import { EcmMetrics } from '../ecm-metrics.ts';
import { ClusterCache } from '../kube/cluster-cache.ts';
import {
  LeaseSchema,
  NodeConditionSchema,
  NodeSchema,
  PodSchema,
  findCondition,
  formatMicroTime,
  formatTime,
  type Node,
  type Pod,
} from '../kube/objects.ts';
import { WorkTracker } from '../work-tracker.ts';
import {
  leaseObject,
  nodeObject,
  podObject,
  readyConditions,
  runningPodStatus,
  type NodeOptions,
  type PodOptions,
} from './cluster-objects.ts';
import { SimulatedTime } from './simulated-time.ts';

/** How often simulated kubelets renew their node Lease (the kubelet's default). */
export const LEASE_RENEW_INTERVAL_MS = 10_000;

/**
 * A whole cluster in memory: cache, writer, fake clock, simulated kubelets
 * and the ECM controllers, for decision tests and the benchmark. Hours of
 * simulated time run in milliseconds; nothing waits on real time.
 */
export class MemoryCluster {
  readonly clock: FakeClock;
  private readonly time: SimulatedTime;
  readonly cache = new ClusterCache();
  readonly writer: MemoryWriter;
  readonly tracker: WorkTracker;
  readonly metrics: EcmMetrics;
  readonly registry = createMetricsRegistry();
  readonly config: EcmConfig;
  readonly core: EcmCore;
  private readonly offline = new Set<string>();
  private readonly errors: unknown[] = [];

  constructor(
    options: { config?: Partial<EcmConfig>; startMs?: number; keepRecords?: boolean } = {},
  ) {
    this.clock = new FakeClock(options.startMs);
    this.time = new SimulatedTime(this.clock, () => this.quiesce());
    this.writer = new MemoryWriter(this.cache, this.clock, {
      keepRecords: options.keepRecords ?? true,
    });
    this.tracker = new WorkTracker((err) => this.errors.push(err));
    this.metrics = new EcmMetrics(this.registry);
    this.config = { ...defaultEcmConfig({ leaderElect: false }), ...options.config };
    this.core = new EcmCore({
      cache: this.cache,
      clock: this.clock,
      writer: this.writer,
      metrics: this.metrics,
      logger: silentLogger(),
      spawn: (work) => this.tracker.run(work),
      config: this.config,
    });
  }

  /** Errors thrown by background work so far (a test expects none). */
  get backgroundErrors(): readonly unknown[] {
    return this.errors;
  }

  addNode(name: string, options: NodeOptions = {}): Node {
    const now = this.clock.now();
    const raw = nodeObject(name, { readyAt: now, ...options });
    const node = NodeSchema.parse(raw);
    node.metadata.uid = randomUUID();
    node.metadata.resourceVersion = this.writer.nextVersion();
    node.metadata.creationTimestamp = formatTime(now);
    this.cache.upsertNode(node);
    const lease = LeaseSchema.parse(leaseObject(name, now));
    lease.metadata.resourceVersion = this.writer.nextVersion();
    this.cache.upsertLease(lease);
    return node;
  }

  addPod(name: string, nodeName: string, options: PodOptions = {}): Pod {
    const raw = podObject(name, nodeName, options);
    raw.status = runningPodStatus(this.clock.now());
    const pod = PodSchema.parse(raw);
    pod.metadata.uid = randomUUID();
    pod.metadata.resourceVersion = this.writer.nextVersion();
    this.cache.upsertPod(pod);
    return pod;
  }

  /** Replaces a node's annotations (all of them), as `kubectl annotate --overwrite` would end up. */
  setNodeAnnotations(name: string, annotations: Record<string, string> | undefined): void {
    const node = this.cache.node(name);
    if (node === undefined) throw new Error(`no node ${name}`);
    this.cache.upsertNode({
      ...node,
      metadata: { ...node.metadata, annotations, resourceVersion: this.writer.nextVersion() },
    });
  }

  /** Cuts the node off: its kubelet stops renewing the Lease and posting status. */
  partition(name: string): void {
    this.offline.add(name);
  }

  /**
   * Reconnects the node: its kubelet renews the Lease from now on and posts
   * its status at once, healthy unless `statuses` says otherwise for some
   * condition types (e.g. `{ Ready: 'False' }`).
   */
  reconnect(name: string, statuses: Record<string, string> = {}): void {
    this.offline.delete(name);
    const node = this.cache.node(name);
    if (node === undefined) return;
    const now = this.clock.now();
    const posted = z
      .array(NodeConditionSchema)
      .parse(readyConditions(now))
      .map((c) => ({ ...c, status: statuses[c.type] ?? c.status }));
    // The kubelet keeps lastTransitionTime when a condition's status did not change.
    const conditions = posted.map((c) => {
      const old = findCondition(node.status.conditions, c.type);
      return old !== undefined && old.status === c.status
        ? { ...c, lastTransitionTime: old.lastTransitionTime }
        : c;
    });
    const others = (node.status.conditions ?? []).filter(
      (c) => !conditions.some((x) => x.type === c.type),
    );
    this.cache.upsertNode({
      ...node,
      metadata: { ...node.metadata, resourceVersion: this.writer.nextVersion() },
      status: { ...node.status, conditions: [...conditions, ...others] },
    });
    this.renewLease(name);
  }

  /** Starts the controllers and the simulated kubelets. */
  start(): void {
    this.core.start();
    const beat = (): void => {
      for (const node of this.cache.nodes()) {
        if (!this.offline.has(node.metadata.name)) this.renewLease(node.metadata.name);
      }
      this.clock.setTimer(LEASE_RENEW_INTERVAL_MS, beat);
    };
    this.clock.setTimer(LEASE_RENEW_INTERVAL_MS, beat);
  }

  stop(): void {
    this.core.stop();
  }

  /** Waits until no controller work is in flight. */
  settle(): Promise<void> {
    return this.tracker.idle();
  }

  /** Runs simulated time forward, letting all work triggered at each instant finish first. */
  advance(ms: number): Promise<void> {
    return this.time.advance(ms);
  }

  /** Runs forward until `predicate` holds (checked after each instant), or fails after `limitMs`. */
  advanceUntil(predicate: () => boolean, limitMs: number): Promise<number> {
    return this.time.advanceUntil(predicate, limitMs);
  }

  /** Lets pending microtasks run, then waits until no controller work is in flight. */
  private async quiesce(): Promise<void> {
    do {
      if (this.tracker.busy) await this.tracker.idle();
      else await Promise.resolve();
    } while (this.tracker.busy);
  }

  private renewLease(name: string): void {
    const lease = this.cache.lease(name);
    if (lease === undefined) return;
    this.cache.upsertLease({
      ...lease,
      metadata: { ...lease.metadata, resourceVersion: this.writer.nextVersion() },
      spec: { ...lease.spec, renewTime: formatMicroTime(this.clock.now()) },
    });
  }
}
