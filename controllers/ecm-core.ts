import { AutonomyTracker } from './autonomy/autonomy-tracker.ts';
import type { EcmConfig } from './config.ts';
import type { ControllerDeps } from './controller-deps.ts';
import { CooperativeController } from './cooperative/cooperative-controller.ts';
import { TaintEvictionController } from './eviction/taint-eviction-controller.ts';
import { podKey } from './kube/objects.ts';
import {
  NODE_CONTROLLER_COMPONENT,
  NodeLifecycleController,
} from './lifecycle/node-lifecycle-controller.ts';
import { PeriodicLoop } from './periodic-loop.ts';
import { KeyedWorkQueue } from './work-queue.ts';
import type { Spawn } from './work-tracker.ts';

/** Upstream's NodeEvictionPeriod: how often the zone queues are offered a token. */
export const NODE_EVICTION_PERIOD_MS = 100;
const NODE_UPDATE_WORKERS = 8;
const POD_UPDATE_WORKERS = 4;

export interface EcmCoreDeps extends ControllerDeps {
  spawn: Spawn;
  config: EcmConfig;
}

/**
 * The controllers of one leadership term, wired to the cache and driven on
 * the clock. A new term starts from a new EcmCore with empty memory, as a
 * restarted kube-controller-manager does.
 */
export class EcmCore {
  readonly lifecycle: NodeLifecycleController | undefined;
  readonly eviction: TaintEvictionController | undefined;
  readonly cooperative: CooperativeController | undefined;
  private readonly deps: EcmCoreDeps;
  private readonly loops: PeriodicLoop[] = [];
  private readonly queues: KeyedWorkQueue[] = [];
  private unsubscribe: (() => void) | undefined;
  private readonly onStart: (() => void)[] = [];

  constructor(deps: EcmCoreDeps) {
    this.deps = deps;
    const { cache, clock, writer, metrics, logger, spawn, config } = deps;
    // What each controller shares, with a logger naming it.
    const shared = (controller: string): ControllerDeps => ({
      cache,
      clock,
      writer,
      metrics,
      logger: logger.child({ controller }),
    });
    if (config.mode === 'standalone') {
      const lifecycle = new NodeLifecycleController({
        ...shared('node-lifecycle'),
        autonomy: new AutonomyTracker(writer, logger, NODE_CONTROLLER_COMPONENT),
        options: {
          nodeMonitorGracePeriodMs: config.nodeMonitorGracePeriod,
          nodeStartupGracePeriodMs: config.nodeStartupGracePeriod,
          evictionQps: config.nodeEvictionRate,
          secondaryEvictionQps: config.secondaryNodeEvictionRate,
          largeClusterThreshold: config.largeClusterSizeThreshold,
          unhealthyZoneThreshold: config.unhealthyZoneThreshold,
        },
      });
      const eviction = new TaintEvictionController({ ...shared('taint-eviction'), spawn });
      const nodeQueue = new KeyedWorkQueue(
        NODE_UPDATE_WORKERS,
        async (name) => {
          await lifecycle.doNoScheduleTaintingPass(name);
          await lifecycle.reconcileNodeLabels(name);
        },
        spawn,
        clock,
      );
      const podQueue = new KeyedWorkQueue(
        POD_UPDATE_WORKERS,
        (key) => lifecycle.processPod(key),
        spawn,
        clock,
      );
      this.queues.push(nodeQueue, podQueue);
      this.loops.push(
        new PeriodicLoop(
          clock,
          NODE_EVICTION_PERIOD_MS,
          () => lifecycle.doNoExecuteTaintingPass(),
          spawn,
          () => !lifecycle.hasNodesToTaint(),
        ),
        new PeriodicLoop(
          clock,
          config.nodeMonitorPeriod,
          () => lifecycle.monitorNodeHealth(),
          spawn,
        ),
      );
      this.unsubscribe = undefined;
      this.onStart.push(() => {
        this.unsubscribe = cache.addListener({
          nodeChanged: (old, next) => {
            if (next !== undefined) nodeQueue.add(next.metadata.name);
            eviction.nodeChanged(old, next);
          },
          podChanged: (old, next) => {
            const nodeName = next?.spec.nodeName;
            if (
              next !== undefined &&
              nodeName !== undefined &&
              nodeName !== '' &&
              old?.spec.nodeName !== nodeName
            ) {
              podQueue.add(podKey(next));
            }
            eviction.podChanged(old, next);
          },
        });
        // What the informers' initial list would have delivered.
        for (const node of cache.nodes()) nodeQueue.add(node.metadata.name);
        for (const pod of cache.pods()) if (pod.spec.nodeName) podQueue.add(podKey(pod));
        eviction.start();
      });
      this.lifecycle = lifecycle;
      this.eviction = eviction;
      this.cooperative = undefined;
    } else {
      const cooperative = new CooperativeController({
        ...shared('cooperative'),
        autonomy: new AutonomyTracker(writer, logger, 'edgebox-ecm'),
        spawn,
      });
      this.loops.push(
        new PeriodicLoop(
          clock,
          config.nodeMonitorPeriod,
          () => cooperative.edgeAutonomyPass(),
          spawn,
        ),
      );
      this.onStart.push(() => {
        this.unsubscribe = cache.addListener({
          nodeChanged: (old, next) => cooperative.nodeChanged(old, next),
          podChanged: (old, next) => cooperative.podChanged(old, next),
        });
        cooperative.start();
      });
      this.lifecycle = undefined;
      this.eviction = undefined;
      this.cooperative = cooperative;
    }
  }

  start(): void {
    this.deps.logger.info({ mode: this.deps.config.mode }, 'controllers starting');
    for (const f of this.onStart) f();
    for (const loop of this.loops) loop.start();
  }

  stop(): void {
    for (const loop of this.loops) loop.stop();
    for (const q of this.queues) q.stop();
    this.unsubscribe?.();
    this.eviction?.stop();
    this.cooperative?.stop();
    this.deps.logger.info('controllers stopped');
  }
}
