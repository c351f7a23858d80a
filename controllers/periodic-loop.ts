import type { Clock, TimerHandle } from './clock.ts';
import type { Spawn } from './work-tracker.ts';

/**
 * Runs `fn` now and then again `periodMs` after each run ends (wait.Until):
 * a slow pass delays the next instead of piling up.
 */
export class PeriodicLoop {
  private readonly clock: Clock;
  private readonly periodMs: number;
  private readonly fn: () => Promise<void>;
  private readonly spawn: Spawn;
  private readonly idle: () => boolean;
  private timer: TimerHandle | undefined;
  private stopped = true;

  /** `idle`: when it says true at a tick there is nothing to do, and no work is started. */
  constructor(
    clock: Clock,
    periodMs: number,
    fn: () => Promise<void>,
    spawn: Spawn,
    idle: () => boolean = () => false,
  ) {
    this.clock = clock;
    this.periodMs = periodMs;
    this.fn = fn;
    this.spawn = spawn;
    this.idle = idle;
  }

  start(initialDelayMs = 0): void {
    this.stopped = false;
    this.schedule(initialDelayMs);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
  }

  private schedule(delayMs: number): void {
    this.timer = this.clock.setTimer(delayMs, () => {
      this.timer = undefined;
      if (this.stopped) return;
      if (this.idle()) {
        this.schedule(this.periodMs);
        return;
      }
      this.spawn(async () => {
        try {
          await this.fn();
        } finally {
          if (!this.stopped) this.schedule(this.periodMs);
        }
      });
    });
  }
}
