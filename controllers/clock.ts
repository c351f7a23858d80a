/**
 * Time as the controllers see it. Every deadline (grace periods, token
 * buckets, toleration countdowns, lease expiry) is read from and scheduled on
 * a Clock, so tests can run hours of outage in milliseconds with FakeClock.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `fn` once, `delayMs` from now (0 or less: at the next chance). */
  setTimer(delayMs: number, fn: () => void): TimerHandle;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(delayMs, fn) {
    const t = setTimeout(fn, Math.max(0, delayMs));
    return { cancel: () => clearTimeout(t) };
  },
};

interface PendingTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/**
 * A manually driven clock. Timers fire only from `fireNext`/`advanceTo`, in
 * due-time order (creation order for equal times), with `now()` set to each
 * timer's due time while it runs.
 */
export class FakeClock implements Clock {
  private current: number;
  private seq = 0;
  private timers: PendingTimer[] = [];

  constructor(startMs: number = Date.UTC(2025, 0, 1)) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimer(delayMs: number, fn: () => void): TimerHandle {
    const timer: PendingTimer = {
      at: this.current + Math.max(0, delayMs),
      seq: this.seq++,
      fn,
      cancelled: false,
    };
    // Keep the array sorted; timers are few (one per loop plus evictions).
    let i = this.timers.length;
    while (i > 0) {
      const prev = this.timers[i - 1] as PendingTimer;
      if (prev.at < timer.at || (prev.at === timer.at && prev.seq < timer.seq)) break;
      i--;
    }
    this.timers.splice(i, 0, timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** Due time of the earliest pending timer, if any. */
  nextTimerAt(): number | undefined {
    this.dropCancelled();
    return this.timers[0]?.at;
  }

  /** Fires the earliest timer if it is due at or before `limit`; false when none is. */
  fireNext(limit: number = Number.POSITIVE_INFINITY): boolean {
    this.dropCancelled();
    const next = this.timers[0];
    if (next === undefined || next.at > limit) return false;
    this.timers.shift();
    if (next.at > this.current) this.current = next.at;
    next.fn();
    return true;
  }

  /** Moves time forward to `t` without firing anything (used once no timer is due before `t`). */
  setNow(t: number): void {
    if (t < this.current) {
      throw new Error(`FakeClock cannot go back in time: now ${this.current}, asked ${t}`);
    }
    this.current = t;
  }

  /** Fires, synchronously and in order, every timer due up to `t`, then sets now to `t`. */
  advanceTo(t: number): void {
    while (this.fireNext(t)) {
      // keep firing
    }
    this.setNow(Math.max(t, this.current));
  }

  private dropCancelled(): void {
    while (this.timers.length > 0 && (this.timers[0] as PendingTimer).cancelled)
      this.timers.shift();
  }
}
