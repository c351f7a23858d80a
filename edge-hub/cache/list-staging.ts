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
function encodeStaged(item: PreparedObject): Buffer {
  const header = Buffer.from(
    JSON.stringify({
      i: item.id,
      n: item.namespace,
      m: item.name,
      r: item.rv,
      l: item.labels,
      f: item.fields,
    }),
  );
  const out = Buffer.allocUnsafe(4 + header.length + item.raw.length);
  out.writeUInt32BE(header.length, 0);
  header.copy(out, 4);
  item.raw.copy(out, 4 + header.length);
  return out;
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
  readonly #chunkBytes: number;
  #seq = 0;
  #pending: Array<{ type: 'put'; key: string; value: Buffer }> = [];
  #pendingBytes = 0;
  #writing: Promise<void> = Promise.resolve();
  #failure: Error | undefined;
  #discarded = false;

  constructor(db: StoreDb, chunkBytes: number) {
    this.#db = db;
    this.#chunkBytes = chunkBytes;
  }

  add(item: PreparedObject): void {
    if (this.#discarded || this.#failure !== undefined) return;
    const value = encodeStaged(item);
    const seq = String(this.#seq++).padStart(10, '0');
    this.#pending.push({ type: 'put', key: keys.stagedItems(this.txid) + seq, value });
    this.#pendingBytes += value.length;
    if (this.#pendingBytes >= this.#chunkBytes) this.#flush();
  }

  #flush(): void {
    const ops = this.#pending;
    if (ops.length === 0) return;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#writing = this.#writing.then(async () => {
      if (this.#failure !== undefined || this.#discarded) return;
      try {
        await this.#db.batch(ops, { sync: false });
      } catch (err) {
        this.#failure = new Error(`staging list items failed: ${String(err)}`, { cause: err });
      }
    });
  }

  /** Every item added is in LevelDB (not synced: the replacement's synced intent is). */
  async complete(): Promise<void> {
    this.#flush();
    await this.#writing;
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** The list will never replace its scope: its staged items go. */
  discard(): void {
    if (this.#discarded) return;
    this.#discarded = true;
    this.#pending = [];
    this.#writing = this.#writing.then(() =>
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
