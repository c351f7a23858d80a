import type { Clock, TimerHandle } from './clock.ts';
import type { Spawn } from './work-tracker.ts';

/** What a handler says about a key: handled, or to be tried again later. */
export type WorkOutcome = 'done' | 'retry';

/** client-go's DefaultControllerRateLimiter per item: 5 ms, doubling, at most 1000 s. */
const RETRY_BASE_MS = 5;
const RETRY_MAX_MS = 1_000_000;

/**
 * A deduplicating queue of keys worked by a few async workers (the shape of
 * client-go's workqueue): a key added while queued is not queued twice, and a
 * key added while being worked on is worked again afterwards, so no change
 * is lost and no key runs twice at once. A key whose handler says 'retry'
 * comes back after a delay that doubles with each failure in a row
 * (AddRateLimited), so a failed write is not dropped.
 */
export class KeyedWorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly again = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly retryTimers = new Set<TimerHandle>();
  private running = 0;
  private stopped = false;
  private readonly workers: number;
  private readonly handler: (key: string) => Promise<WorkOutcome | void>;
  private readonly spawn: Spawn;
  private readonly clock: Clock;

  constructor(
    workers: number,
    handler: (key: string) => Promise<WorkOutcome | void>,
    spawn: Spawn,
    clock: Clock,
  ) {
    this.workers = workers;
    this.handler = handler;
    this.spawn = spawn;
    this.clock = clock;
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.again.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  get length(): number {
    return this.queue.length;
  }

  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.queued.clear();
    this.again.clear();
    for (const t of this.retryTimers) t.cancel();
    this.retryTimers.clear();
  }

  private pump(): void {
    while (!this.stopped && this.running < this.workers && this.queue.length > 0) {
      this.running++;
      this.spawn(() => this.work());
    }
  }

  private async work(): Promise<void> {
    try {
      for (;;) {
        if (this.stopped) return;
        const key = this.queue.shift();
        if (key === undefined) return;
        this.queued.delete(key);
        this.active.add(key);
        let outcome: WorkOutcome | void;
        try {
          outcome = await this.handler(key);
        } finally {
          this.active.delete(key);
          if (this.again.delete(key)) this.add(key);
        }
        if (outcome === 'retry') this.retryLater(key);
        else this.failures.delete(key);
      }
    } finally {
      this.running--;
    }
  }

  private retryLater(key: string): void {
    if (this.stopped) return;
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const timer = this.clock.setTimer(Math.min(RETRY_BASE_MS * 2 ** failures, RETRY_MAX_MS), () => {
      this.retryTimers.delete(timer);
      this.add(key);
    });
    this.retryTimers.add(timer);
  }
}
