import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { keys, prefixRange } from './keys.ts';
import type { StoreDb } from './open-level.ts';
import type { PreparedObject } from './prepared-object.ts';

/** Staged items are written, and read back, in batches of about this many bytes. */
export const STAGED_CHUNK_BYTES = 1024 * 1024;

const stagedHeaderSchema = z.object({
  i: z.string(),
  n: z.string(),
  m: z.string(),
  r: z.string(),
  l: z.record(z.string(), z.string()).optional(),
  f: z.record(z.string(), z.string()),
});

/** A staged item: a 4-byte header length, the header (what the indexes need), the object as stored. */
function stagedHeader(item: PreparedObject): Buffer {
  return Buffer.from(
    JSON.stringify({
      i: item.id,
      n: item.namespace,
      m: item.name,
      r: item.rv,
      l: item.labels,
      f: item.fields,
    }),
  );
}

function decodeStaged(value: Buffer): PreparedObject | Error {
  if (value.length < 4) return new Error('staged item too short');
  const end = 4 + value.readUInt32BE(0);
  let header: z.infer<typeof stagedHeaderSchema>;
  try {
    header = stagedHeaderSchema.parse(JSON.parse(value.toString('utf8', 4, end)));
  } catch (err) {
    return new Error(`staged item unreadable: ${String(err)}`);
  }
  return {
    id: header.i,
    namespace: header.n,
    name: header.m,
    rv: header.r,
    labels: header.l,
    fields: header.f,
    raw: value.subarray(end),
  };
}

/**
 * The items of a list being recorded, written to LevelDB as they are parsed
 * (unsynced batches of STAGED_CHUNK_BYTES under `n/<txid>/`), so a list of any
 * size costs memory for one batch. Nothing reads staged keys until the store
 * replaces the scope from them (CacheStore.replaceStagedList); a list cut
 * short discards them, and a store opened after a crash drops any that no
 * replacement claimed.
 */
export class ListStaging {
  readonly txid = randomUUID();
  readonly #db: StoreDb;
  /**
   * Items are encoded into this one buffer, handed to LevelDB (which copies
   * a batch as it is called) and the buffer reused: a list of any size
   * costs no allocation per item, no garbage waiting for V8 to collect it.
   */
  readonly #chunk: Buffer;
  #used = 0;
  #seq = 0;
  #pending: Array<{ type: 'put'; key: string; value: Buffer }> = [];
  readonly #writes = new Set<Promise<void>>();
  #failure: Error | undefined;
  #discarded = false;

  constructor(db: StoreDb, chunkBytes: number) {
    this.#db = db;
    this.#chunk = Buffer.allocUnsafeSlow(chunkBytes);
  }

  add(item: PreparedObject): void {
    if (this.#discarded || this.#failure !== undefined) return;
    const header = stagedHeader(item);
    const size = 4 + header.length + item.raw.length;
    if (this.#used + size > this.#chunk.length) this.#flush();
    // An item larger than the chunk gets a buffer of its own.
    const into = size > this.#chunk.length ? Buffer.allocUnsafe(size) : this.#chunk;
    const at = into === this.#chunk ? this.#used : 0;
    into.writeUInt32BE(header.length, at);
    header.copy(into, at + 4);
    item.raw.copy(into, at + 4 + header.length);
    if (into === this.#chunk) this.#used += size;
    const seq = String(this.#seq++).padStart(10, '0');
    this.#pending.push({
      type: 'put',
      key: keys.stagedItems(this.txid) + seq,
      value: into.subarray(at, at + size),
    });
  }

  #flush(): void {
    const ops = this.#pending;
    this.#pending = [];
    this.#used = 0;
    if (ops.length === 0 || this.#discarded || this.#failure !== undefined) return;
    // Called now, not chained: an open LevelDB has copied the values when batch()
    // returns; one still opening defers the call, so it gets copies.
    const values =
      this.#db.status === 'open' ? ops : ops.map((op) => ({ ...op, value: Buffer.from(op.value) }));
    const write: Promise<void> = this.#db.batch(values, { sync: false }).then(
      () => {
        this.#writes.delete(write);
      },
      (err: unknown) => {
        this.#writes.delete(write);
        this.#failure ??= new Error(`staging list items failed: ${String(err)}`, { cause: err });
      },
    );
    this.#writes.add(write);
  }

  /** Every item added is in LevelDB (not synced: the replacement's synced intent is). */
  async complete(): Promise<void> {
    this.#flush();
    await Promise.all(this.#writes);
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** The list will never replace its scope: its staged items go. */
  discard(): void {
    if (this.#discarded) return;
    this.#discarded = true;
    this.#pending = [];
    void Promise.all(this.#writes).then(() =>
      this.#db.clear(prefixRange(keys.stagedItems(this.txid))).catch(() => undefined),
    );
  }
}

/** A staged list's items in order, in chunks of about `chunkBytes`. */
export async function* readStaged(
  db: StoreDb,
  txid: string,
  chunkBytes: number,
): AsyncGenerator<PreparedObject[]> {
  const it = db.iterator({
    ...prefixRange(keys.stagedItems(txid)),
    highWaterMarkBytes: chunkBytes,
  });
  try {
    let chunk: PreparedObject[] = [];
    let bytes = 0;
    for (;;) {
      const batch = await it.nextv(64);
      if (batch.length === 0) break;
      for (const [key, value] of batch) {
        const item = decodeStaged(value);
        if (item instanceof Error) throw new Error(`${key}: ${item.message}`);
        chunk.push(item);
        bytes += value.length;
        if (bytes >= chunkBytes) {
          yield chunk;
          chunk = [];
          bytes = 0;
        }
      }
    }
    if (chunk.length > 0) yield chunk;
  } finally {
    await it.close();
  }
}
