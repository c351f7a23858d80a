/**
 * A deduplicating queue of keys worked by a few async workers (the shape of
 * client-go's workqueue): a key added while queued is not queued twice, and a
 * key added while being worked on is worked again afterwards, so no change
 * is lost and no key runs twice at once.
 */
export class KeyedWorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly again = new Set<string>();
  private running = 0;
  private stopped = false;
  private readonly workers: number;
  private readonly handler: (key: string) => Promise<void>;
  private readonly spawn: (work: () => Promise<void>) => void;

  constructor(
    workers: number,
    handler: (key: string) => Promise<void>,
    spawn: (work: () => Promise<void>) => void,
  ) {
    this.workers = workers;
    this.handler = handler;
    this.spawn = spawn;
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
        try {
          await this.handler(key);
        } finally {
          this.active.delete(key);
          if (this.again.delete(key)) this.add(key);
        }
      }
    } finally {
      this.running--;
    }
  }
}
