/**
 * Fails a simulation whose timers keep firing without simulated time moving
 * (a timer re-arming itself with no delay): with a FakeClock that would spin
 * forever and starve the test runner's own timeout.
 */
export class SameInstantGuard {
  private last = Number.NaN;
  private count = 0;
  private readonly limit: number;

  constructor(limit = 100_000) {
    this.limit = limit;
  }

  check(now: number): void {
    if (now !== this.last) {
      this.last = now;
      this.count = 0;
      return;
    }
    if (++this.count > this.limit) {
      throw new Error(
        `more than ${this.limit} timers fired at ${new Date(now).toISOString()} without time moving: a timer loop`,
      );
    }
  }
}
