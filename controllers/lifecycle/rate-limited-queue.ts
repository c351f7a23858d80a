import type { Clock } from '../clock.ts';
import { NeverLimiter, TokenBucket, type RateLimiter } from './token-bucket.ts';

/** Upstream's EvictionRateLimiterBurst: one node at a time, however long the wait. */
export const EVICTION_BURST = 1;

export interface TimedValue {
  readonly value: string;
  readonly uid: string;
  readonly addedAt: number;
  readonly processAt: number;
}

interface Entry extends TimedValue {
  readonly seq: number;
  dead: boolean;
}

export interface TryResult {
  done: boolean;
  /** When not done: wait at least this long before the next attempt. */
  retryAfterMs: number;
}

/**
 * A queue of node names ordered by when each may next be processed, where
 * every attempt spends a token from the zone's limiter (upstream's
 * RateLimitedTimedQueue). A value stays "known" after it was processed, so it
 * is not added again until `remove` is called (the node became Ready again).
 */
export class RateLimitedTimedQueue {
  private limiter: RateLimiter;
  private readonly clock: Clock;
  /** Values added and not removed; maps to the queued entry, or null once processed. */
  private readonly known = new Map<string, Entry | null>();
  /** Sorted by (processAt, seq); removed entries are marked dead and skipped. */
  private queue: Entry[] = [];
  private live = 0;
  private seq = 0;

  constructor(qps: number, clock: Clock) {
    this.clock = clock;
    this.limiter = qps > 0 ? new TokenBucket(qps, EVICTION_BURST, clock) : new NeverLimiter();
  }

  get qps(): number {
    return this.limiter.qps;
  }

  /** Values waiting to be processed. */
  get length(): number {
    return this.live;
  }

  /** Adds a value unless it is already known; true when added. */
  add(value: string, uid: string): boolean {
    if (this.known.has(value)) return false;
    const now = this.clock.now();
    this.known.set(value, this.insert(value, uid, now, now));
    return true;
  }

  /** Forgets a value so it can be added again; true when it was known. */
  remove(value: string): boolean {
    if (!this.known.has(value)) return false;
    const entry = this.known.get(value);
    this.known.delete(value);
    if (entry !== null && entry !== undefined) this.kill(entry);
    return true;
  }

  /** True while the value waits in the queue. */
  isQueued(value: string): boolean {
    const entry = this.known.get(value);
    return entry !== null && entry !== undefined;
  }

  /**
   * Processes due values while the limiter gives tokens. A token is spent
   * before looking at the head's due time, as upstream does.
   */
  async tryProcess(fn: (v: TimedValue) => Promise<TryResult>): Promise<void> {
    let head = this.head();
    while (head !== undefined) {
      if (!this.limiter.tryAccept()) break;
      const now = this.clock.now();
      if (now < head.processAt) break;
      const result = await fn(head);
      // The value may have been removed (node Ready again) while fn ran.
      if (!head.dead) {
        this.kill(head);
        if (result.done) {
          this.known.set(head.value, null);
        } else {
          // Upstream requeues at now + wait + 1ns; the value stays known.
          this.known.set(
            head.value,
            this.insert(head.value, head.uid, head.addedAt, now + result.retryAfterMs + 1),
          );
        }
      }
      head = this.head();
    }
  }

  /**
   * Switches to a new rate (upstream's SwapLimiter). A fresh bucket starts
   * full, so when the old one had no token left the new one is drained too:
   * changing state never grants an extra eviction.
   */
  swapLimiter(qps: number): void {
    if (this.limiter.qps === qps) return;
    if (qps <= 0) {
      this.limiter = new NeverLimiter();
      return;
    }
    const next = new TokenBucket(qps, EVICTION_BURST, this.clock);
    if (!this.limiter.tryAccept()) next.tryAccept();
    this.limiter = next;
  }

  private head(): Entry | undefined {
    while (this.queue.length > 0 && (this.queue[0] as Entry).dead) this.queue.shift();
    return this.queue[0];
  }

  private kill(entry: Entry): void {
    if (entry.dead) return;
    entry.dead = true;
    this.live--;
    // Compact now and then so dead entries do not pile up behind a stuck head.
    if (this.queue.length > 64 && this.live < this.queue.length / 2) {
      this.queue = this.queue.filter((e) => !e.dead);
    }
  }

  private insert(value: string, uid: string, addedAt: number, processAt: number): Entry {
    const entry: Entry = { value, uid, addedAt, processAt, seq: this.seq++, dead: false };
    // Binary search for the first entry that sorts after the new one.
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = this.queue[mid] as Entry;
      if (m.processAt < processAt || (m.processAt === processAt && m.seq < entry.seq)) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, entry);
    this.live++;
    return entry;
  }
}
