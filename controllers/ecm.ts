import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { createMetricsRegistry } from '../src/metrics.ts';
import { silentLogger } from '../src/log.ts';
import { ApiWriter } from './actuator/api-writer.ts';
import { systemClock, type Clock } from './clock.ts';
import type { EcmConfig } from './config.ts';
import { EcmCore } from './ecm-core.ts';
import { EcmMetrics } from './ecm-metrics.ts';
import { ClusterCache } from './kube/cluster-cache.ts';
import { ClusterInformers } from './kube/informers.ts';
import { KubeConfigRestClient, type RestClient } from './kube/rest-client.ts';
import { LeaseElector } from './leader/lease-elector.ts';
import { WorkTracker } from './work-tracker.ts';

export interface EcmOptions {
  config: EcmConfig;
  kubeConfig: KubeConfig;
  /** Namespace of the leader-election Lease (config.leaderElectNamespace wins when set). */
  leaseNamespace: string;
  identity: string;
  /** Defaults to a KubeConfigRestClient over kubeConfig. */
  client?: RestClient;
  clock?: Clock;
  logger?: Logger;
  registry?: Registry;
  /** Keep track of writes until the informers deliver them, so `settled()` covers them (tests). */
  trackEchoes?: boolean;
}

export interface EcmHealth {
  ok: boolean;
  detail: string;
}

/**
 * One ECM process: informers keep the cache warm from the start (so a
 * standby can take over at once); the controllers run only while this
 * instance leads, each leadership term with a fresh EcmCore.
 */
export class Ecm {
  readonly cache = new ClusterCache();
  readonly metrics: EcmMetrics;
  readonly registry: Registry;
  readonly identity: string;
  private readonly config: EcmConfig;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly tracker: WorkTracker;
  private readonly informers: ClusterInformers;
  private readonly writer: ApiWriter;
  private readonly elector: LeaseElector | undefined;
  private core: EcmCore | undefined;
  private started = false;
  private leaderTerms = 0;

  constructor(options: EcmOptions) {
    this.config = options.config;
    this.identity = options.identity;
    this.clock = options.clock ?? systemClock;
    this.logger = (options.logger ?? silentLogger()).child({ identity: options.identity });
    this.registry = options.registry ?? createMetricsRegistry();
    this.metrics = new EcmMetrics(this.registry);
    this.tracker = new WorkTracker((err) => this.logger.error({ err }, 'background work failed'));
    const client =
      options.client ??
      new KubeConfigRestClient(options.kubeConfig, {
        userAgent: `edgebox-ecm/${options.identity}`,
      });
    const spawn = (work: () => Promise<void>): void => this.tracker.run(work);
    this.informers = new ClusterInformers(options.kubeConfig, client, this.cache, this.logger);
    if (this.config.leaderElect) {
      this.elector = new LeaseElector(
        client,
        this.clock,
        {
          namespace: this.config.leaderElectNamespace ?? options.leaseNamespace,
          name: this.config.leaderElectName,
          identity: options.identity,
          leaseDurationMs: this.config.leaderElectLeaseDuration,
          renewDeadlineMs: this.config.leaderElectRenewDeadline,
          retryPeriodMs: this.config.leaderElectRetryPeriod,
        },
        this.logger,
        {
          onStartedLeading: () => this.startCore(),
          onStoppedLeading: () => this.stopCore(),
        },
        spawn,
      );
    }
    const elector = this.elector;
    this.writer = new ApiWriter({
      client,
      cache: this.cache,
      clock: this.clock,
      logger: this.logger,
      mayWrite: elector === undefined ? () => this.core !== undefined : () => elector.mayWrite(),
      spawn,
      instance: options.identity,
      trackEchoes: options.trackEchoes ?? false,
    });
  }

  /** The controllers of the current leadership term, if this instance leads. */
  get controllers(): EcmCore | undefined {
    return this.core;
  }

  get isLeader(): boolean {
    return this.core !== undefined;
  }

  /** How many times this instance became leader. */
  get terms(): number {
    return this.leaderTerms;
  }

  async start(): Promise<void> {
    this.started = true;
    this.logger.info({ mode: this.config.mode }, 'edge controller-manager starting');
    await this.informers.start();
    if (!this.started) return;
    if (this.elector !== undefined) this.elector.start();
    else this.startCore();
  }

  /**
   * Stops controllers, informers and campaigning. With `release` (a clean
   * shutdown) a leader hands its lease back so a standby takes over at once;
   * without it (a crash) the others wait for the lease to expire.
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.started = false;
    if (this.elector !== undefined) await this.elector.stop(options.release ?? true);
    this.stopCore();
    await this.informers.stop();
  }

  /** Resolves once no work is in flight and every write has come back through the informers. */
  async settled(): Promise<void> {
    for (;;) {
      await this.tracker.idle();
      await this.writer.echoesSeen();
      if (!this.tracker.busy) return;
    }
  }

  /** True when nothing is in flight and every write has been seen (cheap check before settled()). */
  get idle(): boolean {
    return !this.tracker.busy && this.writer.echoesPending === 0;
  }

  health(): EcmHealth {
    if (!this.started) return { ok: false, detail: 'not started' };
    if (!this.informers.hasSynced) return { ok: false, detail: 'informers not synced' };
    if (this.elector === undefined) return { ok: true, detail: 'running (no leader election)' };
    return { ok: true, detail: this.core !== undefined ? 'leading' : 'standby' };
  }

  private startCore(): void {
    if (this.core !== undefined) return;
    this.leaderTerms++;
    this.core = new EcmCore({
      cache: this.cache,
      clock: this.clock,
      writer: this.writer,
      metrics: this.metrics,
      logger: this.logger,
      spawn: (work) => this.tracker.run(work),
      config: this.config,
    });
    this.metrics.isLeader.set(1);
    this.core.start();
  }

  private stopCore(): void {
    const core = this.core;
    if (core === undefined) return;
    this.core = undefined;
    this.metrics.isLeader.set(0);
    core.stop();
  }
}
