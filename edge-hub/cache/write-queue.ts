import type { BatchOp } from './apply-rules.ts';
import type { StoreDb } from './open-level.ts';

export interface Deferred<T> {
  resolve(value: T): void;
  reject(err: unknown): void;
}

/**
 * Group commit: operations are queued and one loop drains them; every
 * operation waiting when a commit starts goes into that commit (one synced
 * LevelDB batch), so a burst costs one sync, not one per operation, and no
 * operation is ever split across two batches. An operation `alone` says so
 * (a staged list, written in batches of its own) is committed in a group by
 * itself, after what was queued before it and before what was queued after.
 */
export class WriteQueue<Op> {
  private readonly queue: Op[] = [];
  private draining: Promise<void> | undefined;
  /** Commits one group of operations; called again only after the previous one settled. */
  private readonly commit: (ops: Op[]) => Promise<void>;
  private readonly alone: (op: Op) => boolean;

  constructor(commit: (ops: Op[]) => Promise<void>, alone: (op: Op) => boolean = () => false) {
    this.commit = commit;
    this.alone = alone;
  }

  push(op: Op): void {
    this.queue.push(op);
    this.draining ??= this.drain();
  }

  /** Resolves once every operation queued so far (and any queued meanwhile) is committed. */
  async idle(): Promise<void> {
    while (this.draining !== undefined) await this.draining;
  }

  /**
   * Commits until the queue is empty. `draining` is cleared in the same
   * synchronous step that finds the queue empty, so an operation queued at any
   * moment is either seen by this loop or starts a new one.
   */
  private async drain(): Promise<void> {
    try {
      // Never finish synchronously: `draining` must be assigned before it is cleared.
      await Promise.resolve();
      while (this.queue.length > 0) {
        const at = this.queue.findIndex(this.alone);
        await this.commit(this.queue.splice(0, at < 0 ? this.queue.length : Math.max(at, 1)));
      }
    } finally {
      this.draining = undefined;
    }
  }
}

/**
 * Bookkeeping records (a resource's lastSync, a scope's newer list
 * resourceVersion over the same objects) changed by answers that changed
 * nothing else: they ride along with the next batch, or are flushed on their
 * own after `flushMs`, instead of costing a synced write per answer. Losing
 * them to a crash loses only those times and versions. A value is encoded
 * when taken, so a record changed a hundred times is encoded once.
 */
export class DeferredRecords<Source> {
  private readonly pending = new Map<string, Buffer | Source>();
  private readonly flushMs: number;
  private readonly encode: (source: Source) => Buffer;
  private readonly flush: () => void;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: { flushMs: number; encode: (source: Source) => Buffer; flush: () => void }) {
    this.flushMs = opts.flushMs;
    this.encode = opts.encode;
    this.flush = opts.flush;
  }

  get size(): number {
    return this.pending.size;
  }

  /** Keeps a record for the next batch; `flush` is called within flushMs if none comes. */
  defer(key: string, value: Buffer | Source): void {
    this.pending.set(key, value);
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.pending.size > 0) this.flush();
    }, this.flushMs);
    this.timer.unref();
  }

  /** Replaces a record's waiting value without arming the timer: a batch is being written. */
  set(key: string, value: Buffer): void {
    this.pending.set(key, value);
  }

  /** Every waiting record as a batch put, encoded now; none is left waiting. */
  take(): BatchOp[] {
    const ops: BatchOp[] = [];
    for (const [key, value] of this.pending) {
      ops.push({ type: 'put', key, value: Buffer.isBuffer(value) ? value : this.encode(value) });
    }
    this.pending.clear();
    this.cancel();
    return ops;
  }

  cancel(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * One atomic LevelDB write, synced unless `sync` is false (a staged list's
 * batches before its last: its intent record redoes them after a crash). A chained batch hands each key and value
 * to LevelDB in one native call; an array batch costs the native side a
 * dozen property reads per operation, at a watch burst's thousands of
 * operations a second.
 */
export async function writeBatch(db: StoreDb, ops: readonly BatchOp[], sync = true): Promise<void> {
  const batch = db.batch();
  try {
    for (const op of ops) {
      if (op.type === 'put') batch.put(op.key, op.value);
      else batch.del(op.key);
    }
  } catch (err) {
    await batch.close();
    throw err;
  }
  await batch.write({ sync });
}
