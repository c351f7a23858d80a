/** Runs async work as tracked work (WorkTracker.run), so a driver can wait until it is done. */
export type Spawn = (work: () => Promise<void>) => void;

/**
 * Counts asynchronous work in flight (controller passes, API writes, queue
 * workers) so a driver can wait until the system has nothing left to do.
 * Production code only pays a counter; tests use `idle()` instead of sleeps.
 */
export class WorkTracker {
  private inFlight = 0;
  private waiters: (() => void)[] = [];
  private readonly onError: (err: unknown) => void;

  constructor(onError: (err: unknown) => void) {
    this.onError = onError;
  }

  get busy(): boolean {
    return this.inFlight > 0;
  }

  /** Runs `fn` as tracked work; a rejection goes to onError, never unhandled. */
  run(fn: () => Promise<unknown> | unknown): void {
    this.inFlight++;
    let result: Promise<unknown>;
    try {
      result = Promise.resolve(fn());
    } catch (err) {
      result = Promise.reject(err);
    }
    result.then(
      () => this.done(),
      (err: unknown) => {
        this.onError(err);
        this.done();
      },
    );
  }

  /** Resolves once nothing is in flight. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private done(): void {
    this.inFlight--;
    if (this.inFlight === 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }
  }
}
