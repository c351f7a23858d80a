/**
 * Token bucket: `ratePerSecond` tokens a second, at most `burst` saved up.
 * Used to cut off a guest that sends messages, or bytes, faster than any
 * honest agent.
 */
export class TokenBucket {
  readonly ratePerSecond: number;
  readonly burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(ratePerSecond: number, burst: number, now: () => number = () => performance.now()) {
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#last = now();
  }

  /** Takes `count` tokens if there are that many. */
  take(count = 1): boolean {
    const now = this.#now();
    this.#tokens = Math.min(
      this.burst,
      this.#tokens + ((now - this.#last) / 1000) * this.ratePerSecond,
    );
    this.#last = now;
    if (this.#tokens < count) return false;
    this.#tokens -= count;
    return true;
  }
}
