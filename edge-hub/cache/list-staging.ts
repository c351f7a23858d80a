import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
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

/** Staged lists are files `staging-<txid>` in the store's directory (LevelDB ignores names it does not use). */
const STAGING_FILE_PREFIX = 'staging-';

export function stagingFile(dir: string, txid: string): string {
  return join(dir, `${STAGING_FILE_PREFIX}${txid}`);
}

/** Removes the staged lists no replacement claims (`keep`: txids of decided ones). */
export async function dropStagedLists(dir: string, keep: ReadonlySet<string>): Promise<void> {
  for (const name of await readdir(dir)) {
    if (name.startsWith(STAGING_FILE_PREFIX) && !keep.has(name.slice(STAGING_FILE_PREFIX.length))) {
      await rm(join(dir, name), { force: true });
    }
  }
}

/**
 * A staged item: its size (4 bytes), its header's size (4 bytes), the header
 * (what the indexes need), the object as stored.
 */
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
 * The items of a list being recorded, written to a file in the store's
 * directory as they are parsed (STAGED_CHUNK_BYTES at a time), so a list of
 * any size costs memory for one batch. Nothing reads the file until the store
 * replaces the scope from them (CacheStore.replaceStagedList); a list cut
 * short discards them, and a store opened after a crash drops any that no
 * replacement claimed.
 */
export class ListStaging {
  readonly txid = randomUUID();
  readonly #path: string;
  /**
   * Items are encoded into this one buffer and written to the file when it
   * is full, the buffer then reused: a list of any size costs no allocation
   * per item, and the file is read back with read(), not mapped, so its
   * pages never count in the hub's RSS (LevelDB maps its tables).
   */
  readonly #chunk: Buffer;
  #used = 0;
  #fd: number | undefined;
  #failure: Error | undefined;
  #discarded = false;

  constructor(dir: string, chunkBytes: number) {
    this.#path = stagingFile(dir, this.txid);
    this.#chunk = Buffer.allocUnsafeSlow(chunkBytes);
  }

  add(item: PreparedObject): void {
    if (this.#discarded || this.#failure !== undefined) return;
    const header = stagedHeader(item);
    const size = 8 + header.length + item.raw.length;
    if (this.#used + size > this.#chunk.length) this.#flush();
    // An item larger than the chunk gets a buffer of its own.
    const into = size > this.#chunk.length ? Buffer.allocUnsafe(size) : this.#chunk;
    const at = into === this.#chunk ? this.#used : 0;
    into.writeUInt32BE(size - 4, at);
    into.writeUInt32BE(header.length, at + 4);
    header.copy(into, at + 8);
    item.raw.copy(into, at + 8 + header.length);
    if (into === this.#chunk) this.#used += size;
    else this.#write(into);
  }

  /** Into the page cache, synchronously (a megabyte at a time): the buffer is reused at once. */
  #write(bytes: Buffer): void {
    if (this.#failure !== undefined || this.#discarded) return;
    try {
      this.#fd ??= openSync(this.#path, 'wx', 0o600);
      for (let at = 0; at < bytes.length;) at += writeSync(this.#fd, bytes, at, bytes.length - at);
    } catch (err) {
      this.#failure = new Error(`staging list items in ${this.#path} failed: ${String(err)}`, {
        cause: err,
      });
    }
  }

  #flush(): void {
    if (this.#used > 0) this.#write(this.#chunk.subarray(0, this.#used));
    this.#used = 0;
  }

  /** Every item added is on disk (synced: the replacement's intent refers to it). */
  complete(): Promise<void> {
    this.#flush();
    if (this.#failure === undefined) {
      try {
        this.#fd ??= openSync(this.#path, 'wx', 0o600);
        fsyncSync(this.#fd);
      } catch (err) {
        this.#failure = new Error(`syncing ${this.#path} failed: ${String(err)}`, { cause: err });
      }
    }
    this.#close();
    return this.#failure === undefined ? Promise.resolve() : Promise.reject(this.#failure);
  }

  #close(): void {
    if (this.#fd === undefined) return;
    try {
      closeSync(this.#fd);
    } catch {
      // already unusable; the file is dropped or read by path
    }
    this.#fd = undefined;
  }

  /** The list will never replace its scope: its staged items go. */
  discard(): void {
    if (this.#discarded) return;
    this.#discarded = true;
    this.#used = 0;
    this.#close();
    try {
      unlinkSync(this.#path);
    } catch {
      // never written, or already gone
    }
  }
}

/**
 * A staged list's items in order, in chunks of about `chunkBytes`. The
 * items' bytes are views of one buffer that is read into again for the next
 * chunk: they are valid until the next chunk is asked for.
 */
export async function* readStaged(
  dir: string,
  txid: string,
  chunkBytes: number,
): AsyncGenerator<PreparedObject[]> {
  const path = stagingFile(dir, txid);
  const file = await open(path, 'r');
  try {
    let buffer = Buffer.allocUnsafeSlow(chunkBytes);
    /** Bytes of an item cut by the last read, moved to the buffer's start. */
    let kept = 0;
    for (;;) {
      const { bytesRead } = await file.read(buffer, kept, buffer.length - kept);
      if (bytesRead === 0) break;
      const filled = kept + bytesRead;
      const items: PreparedObject[] = [];
      let at = 0;
      while (filled - at >= 4) {
        const size = buffer.readUInt32BE(at);
        if (filled - at - 4 < size) break;
        const item = decodeStaged(buffer.subarray(at + 4, at + 4 + size));
        if (item instanceof Error) throw new Error(`${path}: ${item.message}`);
        items.push(item);
        at += 4 + size;
      }
      if (items.length > 0) yield items;
      kept = filled - at;
      const next = kept >= 4 ? 4 + buffer.readUInt32BE(at) : 0;
      // An item larger than the buffer gets a buffer that holds it.
      const grown = next > buffer.length ? Buffer.allocUnsafeSlow(next) : buffer;
      buffer.copy(grown, 0, at, filled);
      buffer = grown;
    }
    if (kept > 0) throw new Error(`${path}: ends inside an item`);
  } finally {
    await file.close();
  }
}
