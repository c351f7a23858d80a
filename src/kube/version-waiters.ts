/**
 * Reads waiting for a store to reach a resourceVersion, as the apiserver's
 * watch cache makes a read "not older than N" wait (up to 3 s) before it
 * answers "Too large resource version". Used by the hub's shared copy of a
 * resource and by the apiserver double alike.
 */
export class VersionWaiters<V extends number | bigint> {
  readonly #waiting = new Set<{ rv: V; wake: (reached: boolean) => void }>();

  /** Resolves true once `reached(rv)` is called with a version at or past `rv`, false after `ms`. */
  wait(rv: V, current: V, ms: number): Promise<boolean> {
    if (current >= rv) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = {
        rv,
        wake: (reached: boolean) => {
          clearTimeout(timer);
          this.#waiting.delete(waiter);
          resolve(reached);
        },
      };
      const timer = setTimeout(() => waiter.wake(false), ms);
      this.#waiting.add(waiter);
    });
  }

  /** The store is at `rv` now: wakes who waited for it or less. */
  reached(rv: V): void {
    for (const w of [...this.#waiting]) if (w.rv <= rv) w.wake(true);
  }

  /** Wakes everyone with false (the store closes). */
  cancel(): void {
    for (const w of [...this.#waiting]) w.wake(false);
  }
}
