import type { Logger } from '../../src/log.ts';

export type UpstreamState = 'unknown' | 'up' | 'down';

export type ProbeResult = { ok: true } | { ok: false; reason: string };

/** Asks one server whether it serves; must settle within `timeoutMs` (the checker also enforces it). */
export type Probe<U> = (upstream: U, timeoutMs: number) => Promise<ProbeResult>;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface StateChange {
  upstream: string;
  from: UpstreamState;
  to: UpstreamState;
  reason: string;
}

export interface OverallChange {
  from: UpstreamState;
  to: UpstreamState;
}

export interface UpstreamHealth {
  name: string;
  state: UpstreamState;
  /** ISO time of the last state change (or of the checker's start). */
  since: string;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  lastError: string | null;
  lastProbe: string | null;
}

export interface HealthCheckerOptions<U extends { readonly name: string }> {
  upstreams: readonly U[];
  probe: Probe<U>;
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failures that mark an up server down. */
  failureThreshold: number;
  /** Consecutive successes that mark a down server up. */
  successThreshold: number;
  log: Logger;
  timers?: Timers;
  clock?: () => number;
}

interface Tracked<U> {
  upstream: U;
  state: UpstreamState;
  since: number;
  failures: number;
  successes: number;
  lastError: string | null;
  lastProbe: number | null;
  timer: unknown;
  probing: boolean;
}

/**
 * Says, for each upstream, whether it is up, and is the one place the rest
 * of the hub asks (`routable()`, `overall()`).
 *
 * A server starts `unknown` and its first observation (the first probe, run
 * at once, or the first proxied request) decides: a node that boots offline
 * answers from its cache without waiting for thresholds. After that,
 * `failureThreshold` consecutive failures mark it down and
 * `successThreshold` consecutive successes mark it up again, so one lost
 * probe does not flip the node offline.
 */
export class HealthChecker<U extends { readonly name: string }> {
  readonly #opts: HealthCheckerOptions<U>;
  readonly #timers: Timers;
  readonly #clock: () => number;
  readonly #tracked: Tracked<U>[];
  readonly #onChange: Array<(c: StateChange) => void> = [];
  readonly #onOverall: Array<(c: OverallChange) => void> = [];
  readonly #onProbeSuccess: Array<(upstream: U) => void> = [];
  #running = false;
  #overall: UpstreamState = 'unknown';
  #routable: readonly U[] | undefined;

  constructor(opts: HealthCheckerOptions<U>) {
    if (opts.upstreams.length === 0) throw new Error('HealthChecker needs at least one upstream');
    this.#opts = opts;
    this.#timers = opts.timers ?? realTimers;
    this.#clock = opts.clock ?? Date.now;
    const now = this.#clock();
    this.#tracked = opts.upstreams.map((upstream) => ({
      upstream,
      state: 'unknown',
      since: now,
      failures: 0,
      successes: 0,
      lastError: null,
      lastProbe: null,
      timer: undefined,
      probing: false,
    }));
  }

  /** Runs the first probe of every server now, then one every interval after the last settles. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    for (const t of this.#tracked) void this.#probe(t);
  }

  stop(): void {
    this.#running = false;
    for (const t of this.#tracked) {
      if (t.timer !== undefined) this.#timers.clearTimeout(t.timer);
      t.timer = undefined;
    }
  }

  /**
   * The servers a request may go to, best first: those up (in configured
   * order, so the first server is preferred while it is up), then those not
   * yet known. Empty means offline.
   */
  routable(): readonly U[] {
    // Asked for every request; the answer changes only at a transition.
    if (this.#routable === undefined) {
      const up = this.#tracked.filter((t) => t.state === 'up');
      const unknown = this.#tracked.filter((t) => t.state === 'unknown');
      this.#routable = [...up, ...unknown].map((t) => t.upstream);
    }
    return this.#routable;
  }

  /** up: some server is up; down: every server is down; unknown otherwise. */
  overall(): UpstreamState {
    return this.#overall;
  }

  stateOf(name: string): UpstreamState | undefined {
    return this.#tracked.find((t) => t.upstream.name === name)?.state;
  }

  snapshot(): UpstreamHealth[] {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return this.#tracked.map((t) => ({
      name: t.upstream.name,
      state: t.state,
      since: new Date(t.since).toISOString(),
      consecutiveFailures: t.failures,
      consecutiveSuccesses: t.successes,
      lastError: t.lastError,
      lastProbe: iso(t.lastProbe),
    }));
  }

  onChange(fn: (c: StateChange) => void): void {
    this.#onChange.push(fn);
  }

  onOverallChange(fn: (c: OverallChange) => void): void {
    this.#onOverall.push(fn);
  }

  /** Every successful probe, whatever the state; lets the hub notice it is connected again. */
  onProbeSuccess(fn: (upstream: U) => void): void {
    this.#onProbeSuccess.push(fn);
  }

  /** A proxied request got an answer from this server. */
  reportSuccess(upstream: U): void {
    const t = this.#find(upstream);
    if (t !== undefined) this.#observe(t, { ok: true });
  }

  /** A proxied request could not reach this server (connect error, reset, timeout). */
  reportFailure(upstream: U, reason: string): void {
    const t = this.#find(upstream);
    if (t !== undefined) this.#observe(t, { ok: false, reason });
  }

  #find(upstream: U): Tracked<U> | undefined {
    return this.#tracked.find((t) => t.upstream === upstream || t.upstream.name === upstream.name);
  }

  async #probe(t: Tracked<U>): Promise<void> {
    t.timer = undefined;
    if (!this.#running || t.probing) return;
    t.probing = true;
    const result = await this.#probeWithTimeout(t.upstream);
    t.probing = false;
    if (!this.#running) return;
    t.lastProbe = this.#clock();
    this.#observe(t, result);
    if (result.ok) for (const fn of this.#onProbeSuccess) fn(t.upstream);
    if (this.#running && t.timer === undefined) {
      t.timer = this.#timers.setTimeout(() => void this.#probe(t), this.#opts.intervalMs);
    }
  }

  #probeWithTimeout(upstream: U): Promise<ProbeResult> {
    const { timeoutMs } = this.#opts;
    return new Promise<ProbeResult>((resolve) => {
      let settled = false;
      const finish = (r: ProbeResult) => {
        if (settled) return;
        settled = true;
        this.#timers.clearTimeout(timer);
        resolve(r);
      };
      const timer = this.#timers.setTimeout(
        () => finish({ ok: false, reason: `no answer within ${timeoutMs}ms` }),
        timeoutMs,
      );
      this.#opts
        .probe(upstream, timeoutMs)
        .then(finish, (err: unknown) =>
          finish({ ok: false, reason: err instanceof Error ? err.message : String(err) }),
        );
    });
  }

  #observe(t: Tracked<U>, result: ProbeResult): void {
    const { failureThreshold, successThreshold } = this.#opts;
    if (result.ok) {
      t.successes += 1;
      t.failures = 0;
      if (t.state === 'unknown' || (t.state === 'down' && t.successes >= successThreshold)) {
        this.#transition(t, 'up', `${t.successes} consecutive successful checks`);
      }
    } else {
      t.failures += 1;
      t.successes = 0;
      t.lastError = result.reason;
      if (t.state === 'unknown' || (t.state === 'up' && t.failures >= failureThreshold)) {
        this.#transition(t, 'down', result.reason);
      }
    }
  }

  #transition(t: Tracked<U>, to: UpstreamState, reason: string): void {
    const from = t.state;
    t.state = to;
    this.#routable = undefined;
    t.since = this.#clock();
    const change: StateChange = { upstream: t.upstream.name, from, to, reason };
    if (to === 'down') this.#opts.log.warn(change, 'upstream down');
    else this.#opts.log.info(change, 'upstream up');
    for (const fn of this.#onChange) fn(change);
    const overall = this.#computeOverall();
    if (overall !== this.#overall) {
      const oc: OverallChange = { from: this.#overall, to: overall };
      this.#overall = overall;
      for (const fn of this.#onOverall) fn(oc);
    }
  }

  #computeOverall(): UpstreamState {
    if (this.#tracked.some((t) => t.state === 'up')) return 'up';
    if (this.#tracked.some((t) => t.state === 'unknown')) return 'unknown';
    return 'down';
  }
}
