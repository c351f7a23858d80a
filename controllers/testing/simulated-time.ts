import type { FakeClock } from '../clock.ts';
import { SameInstantGuard } from './same-instant-guard.ts';

/**
 * Drives a harness's FakeClock: fires timers one at a time, in order, and
 * before each (and after the last) waits with `settle` until everything the
 * previous ones started has finished, so a test reads a quiet system.
 */
export class SimulatedTime {
  private readonly clock: FakeClock;
  private readonly settle: () => Promise<void>;
  private readonly guard = new SameInstantGuard();

  constructor(clock: FakeClock, settle: () => Promise<void>) {
    this.clock = clock;
    this.settle = settle;
  }

  /** Runs simulated time forward by `ms`. */
  async advance(ms: number): Promise<void> {
    const target = this.clock.now() + ms;
    for (;;) {
      await this.settle();
      if (!this.clock.fireNext(target)) break;
      this.guard.check(this.clock.now());
    }
    this.clock.setNow(target);
    await this.settle();
  }

  /** Runs forward until `predicate` holds (checked after each timer); returns that time. */
  async advanceUntil(predicate: () => boolean, limitMs: number): Promise<number> {
    const limit = this.clock.now() + limitMs;
    for (;;) {
      await this.settle();
      if (predicate()) return this.clock.now();
      this.guard.check(this.clock.now());
      if (!this.clock.fireNext(limit)) {
        throw new Error(`condition not reached within ${limitMs} ms of simulated time`);
      }
    }
  }
}
