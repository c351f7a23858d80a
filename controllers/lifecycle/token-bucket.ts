import type { Clock } from '../clock.ts';

export interface RateLimiter {
  /** Takes a token if one is available now. */
  tryAccept(): boolean;
  /** Tokens per second this limiter refills at (0 = never). */
  readonly qps: number;
}

/**
 * A token bucket that refills `qps` tokens a second up to `burst`, starting
 * full, with time read from the clock (x/time/rate's Allow, as client-go's
 * flowcontrol.NewTokenBucketRateLimiter uses it).
 */
export class TokenBucket implements RateLimiter {
  readonly qps: number;
  private readonly burst: number;
  private readonly clock: Clock;
  private tokens: number;
  private last: number;

  constructor(qps: number, burst: number, clock: Clock) {
    if (!(qps > 0)) throw new Error(`token bucket needs a positive rate, got ${qps}`);
    this.qps = qps;
    this.burst = burst;
    this.clock = clock;
    this.tokens = burst;
    this.last = clock.now();
  }

  tryAccept(): boolean {
    const now = this.clock.now();
    const elapsed = Math.max(0, now - this.last);
    const tokens = Math.min(this.burst, this.tokens + (elapsed / 1000) * this.qps) - 1;
    if (tokens < 0) return false;
    this.tokens = tokens;
    this.last = now;
    return true;
  }
}

/** A rate of zero: nothing is ever let through (flowcontrol.NewFakeNeverRateLimiter). */
export class NeverLimiter implements RateLimiter {
  readonly qps = 0;
  tryAccept(): boolean {
    return false;
  }
}
