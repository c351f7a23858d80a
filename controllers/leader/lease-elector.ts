import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.ts';
import { errorStatus } from '../actuator/cluster-writer.ts';
import { LeaseSchema, formatMicroTime, parseMicroTime, type Lease } from '../kube/objects.ts';
import type { RestClient } from '../kube/rest-client.ts';
import type { Spawn } from '../work-tracker.ts';

export interface LeaderElectionConfig {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export interface LeaderCallbacks {
  onStartedLeading(): void;
  onStoppedLeading(): void;
  onNewLeader?(identity: string): void;
}

interface ObservedRecord {
  holder: string;
  renewTime: string | undefined;
  acquireTime: string | undefined;
  durationSeconds: number;
  transitions: number;
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules:
 * a candidate may take the lease once it has seen the holder's record
 * unchanged for a whole lease duration (measured on its own clock); the
 * leader renews every retry period and steps down when it could not renew
 * within the renew deadline. Since renew deadline < lease duration, a leader
 * that cannot renew stops writing (see `mayWrite`) before anyone else may
 * take over: that is the fencing.
 */
export class LeaseElector {
  private readonly client: RestClient;
  private readonly clock: Clock;
  private readonly config: LeaderElectionConfig;
  private readonly logger: Logger;
  private readonly callbacks: LeaderCallbacks;
  private readonly spawn: Spawn;
  private observed: ObservedRecord | undefined;
  private observedAt = 0;
  private leading = false;
  private lastRenew = 0;
  private running = false;
  private timer: TimerHandle | undefined;
  private lastLeader = '';

  constructor(
    client: RestClient,
    clock: Clock,
    config: LeaderElectionConfig,
    logger: Logger,
    callbacks: LeaderCallbacks,
    spawn: Spawn,
  ) {
    this.client = client;
    this.clock = clock;
    this.config = config;
    this.logger = logger;
    this.callbacks = callbacks;
    this.spawn = spawn;
  }

  get isLeading(): boolean {
    return this.leading;
  }

  /** Fencing: true only while leading and within the renew deadline of the last renewal. */
  mayWrite(): boolean {
    return this.leading && this.clock.now() < this.lastRenew + this.config.renewDeadlineMs;
  }

  get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.config.namespace)}/leases/${encodeURIComponent(this.config.name)}`;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /** Stops campaigning; a leader steps down and, with `release`, hands the lease back at once. */
  async stop(release: boolean): Promise<void> {
    this.running = false;
    this.timer?.cancel();
    this.timer = undefined;
    const wasLeading = this.leading;
    if (wasLeading) this.stepDown('stopping');
    if (release && wasLeading) {
      try {
        await this.release();
      } catch (err) {
        this.logger.warn(
          { err },
          'releasing the leader lease failed; others take over when it expires',
        );
      }
    }
  }

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = this.clock.setTimer(delayMs, () => {
      this.timer = undefined;
      this.spawn(() => this.tick());
    });
  }

  private async tick(): Promise<void> {
    if (!this.running) return;
    const ok = await this.tryAcquireOrRenew().catch((err: unknown) => {
      this.logger.warn({ err, lease: this.config.name }, 'leader lease request failed');
      return false;
    });
    if (!this.running) return;
    const now = this.clock.now();
    if (ok) {
      this.lastRenew = now;
      if (!this.leading) {
        this.leading = true;
        this.logger.info({ lease: this.config.name }, 'became leader');
        this.callbacks.onStartedLeading();
      }
      this.schedule(this.config.retryPeriodMs);
      return;
    }
    const holder = this.observed?.holder ?? '';
    if (this.leading && holder !== '' && holder !== this.config.identity) {
      this.stepDown(`the lease is held by ${holder}`);
    } else if (this.leading && now >= this.lastRenew + this.config.renewDeadlineMs) {
      this.stepDown('could not renew the lease within the renew deadline');
    }
    // A candidate looks again no later than the moment the holder's lease runs out
    // (having just tried, it waits a full period once that moment has come).
    let delay = this.config.retryPeriodMs;
    if (!this.leading && this.observed !== undefined && this.observed.holder !== '') {
      const expiresIn = this.observedAt + this.observed.durationSeconds * 1000 - now;
      if (expiresIn > 0 && expiresIn < delay) delay = expiresIn;
    }
    this.schedule(delay);
  }

  private stepDown(why: string): void {
    this.leading = false;
    this.logger.warn({ why }, 'stopped leading');
    this.callbacks.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.clock.now();
    const nowText = formatMicroTime(now);
    const durationSeconds = Math.ceil(this.config.leaseDurationMs / 1000);
    let lease: Lease | undefined;
    try {
      lease = LeaseSchema.parse(await this.client.request('GET', this.path));
    } catch (err) {
      if (errorStatus(err) !== 404) throw err;
    }
    if (lease === undefined) {
      const created = LeaseSchema.parse(
        await this.client.request('POST', this.path.replace(/\/[^/]+$/, ''), {
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.config.name, namespace: this.config.namespace },
            spec: {
              holderIdentity: this.config.identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: nowText,
              renewTime: nowText,
              leaseTransitions: 0,
            },
          },
        }),
      );
      this.observe(created, now);
      return true;
    }

    this.observe(lease, now);
    const record = this.observed as ObservedRecord;
    const heldByOther = record.holder !== '' && record.holder !== this.config.identity;
    if (heldByOther && this.observedAt + record.durationSeconds * 1000 > now) return false;

    const iHeldIt = record.holder === this.config.identity;
    const spec = {
      holderIdentity: this.config.identity,
      leaseDurationSeconds: durationSeconds,
      acquireTime: iHeldIt && record.acquireTime !== undefined ? record.acquireTime : nowText,
      renewTime: nowText,
      leaseTransitions: iHeldIt ? record.transitions : record.transitions + 1,
    };
    this.observe(await this.putLease(lease.metadata.resourceVersion, spec), now);
    return true;
  }

  /** Replaces the lease record, only onto the version it was decided from. */
  private async putLease(resourceVersion: string, spec: Lease['spec']): Promise<Lease> {
    return LeaseSchema.parse(
      await this.client.request('PUT', this.path, {
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name: this.config.name, namespace: this.config.namespace, resourceVersion },
          spec,
        },
      }),
    );
  }

  /** Remembers the record and when (on our clock) it last changed. */
  private observe(lease: Lease, now: number): void {
    const record: ObservedRecord = {
      holder: lease.spec.holderIdentity ?? '',
      renewTime: lease.spec.renewTime,
      acquireTime: lease.spec.acquireTime,
      durationSeconds: lease.spec.leaseDurationSeconds ?? 0,
      transitions: lease.spec.leaseTransitions ?? 0,
    };
    const o = this.observed;
    if (
      o === undefined ||
      o.holder !== record.holder ||
      parseMicroTime(o.renewTime) !== parseMicroTime(record.renewTime) ||
      o.acquireTime !== record.acquireTime ||
      o.durationSeconds !== record.durationSeconds ||
      o.transitions !== record.transitions
    ) {
      this.observed = record;
      this.observedAt = now;
    }
    if (record.holder !== this.lastLeader) {
      this.lastLeader = record.holder;
      if (record.holder !== '') {
        this.logger.info({ leader: record.holder }, 'new leader observed');
        this.callbacks.onNewLeader?.(record.holder);
      }
    }
  }

  /** Hands the lease back (client-go's ReleaseOnCancel): empty holder, 1 s duration. */
  private async release(): Promise<void> {
    const lease = LeaseSchema.parse(await this.client.request('GET', this.path));
    if (lease.spec.holderIdentity !== this.config.identity) return;
    const nowText = formatMicroTime(this.clock.now());
    await this.putLease(lease.metadata.resourceVersion, {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTime: nowText,
      renewTime: nowText,
      leaseTransitions: lease.spec.leaseTransitions ?? 0,
    });
    this.logger.info({ lease: this.config.name }, 'leader lease released');
  }
}
