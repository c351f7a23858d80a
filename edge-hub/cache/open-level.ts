import { mkdir, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Level } from 'level';
import type { Logger } from '../../src/log.ts';
import { CACHE_LOSS_KEY, LAYOUT_VERSION, LAYOUT_VERSION_KEY } from './keys.ts';
import { encodeRecord, type CacheLoss } from './store-records.ts';

export type StoreDb = Level<string, Buffer>;

export class StoreInUseError extends Error {}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return `${err.message}${cause}`;
}

function isLocked(err: unknown): boolean {
  const code = (e: unknown): unknown =>
    e instanceof Error ? (e as { code?: unknown }).code : undefined;
  return (
    code(err) === 'LEVEL_LOCKED' || (err instanceof Error && code(err.cause) === 'LEVEL_LOCKED')
  );
}

async function tryOpen(dataDir: string): Promise<StoreDb> {
  const db = new Level<string, Buffer>(dataDir, {
    keyEncoding: 'utf8',
    valueEncoding: 'buffer',
    // A larger write buffer turns a storm of small watch batches into fewer compactions.
    writeBufferSize: 8 * 1024 * 1024,
    // Reads of whole lists dominate: snappy saves disk but costs a decompression per block.
    compression: false,
  });
  await db.open({ createIfMissing: true });
  try {
    const version = await db.get(LAYOUT_VERSION_KEY);
    if (version === undefined) {
      const first = await db.keys({ limit: 1 }).all();
      if (first.length > 0) {
        throw new Error('store holds keys but no layout version: not an edgebox hub store');
      }
      await db.put(LAYOUT_VERSION_KEY, Buffer.from(LAYOUT_VERSION), { sync: true });
    } else if (version.toString() !== LAYOUT_VERSION) {
      throw new Error(
        `store layout version ${version.toString()} is not the supported ${LAYOUT_VERSION}`,
      );
    }
  } catch (err) {
    await db.close();
    throw err;
  }
  return db;
}

function stamp(now: number): string {
  return new Date(now).toISOString().replace(/[:.]/g, '-');
}

/**
 * Opens the hub's LevelDB store. A store that cannot be opened (corrupt,
 * unreadable, foreign layout) is moved aside to `<dataDir>.corrupt-<time>` so
 * an operator can inspect it, and a fresh store takes its place: never reused
 * half-broken, never deleted. The fresh store records the loss
 * (CACHE_LOSS_KEY), so the hub answers as the cold cache it is and says why.
 * A store locked by another live process is an error, not corruption.
 */
export async function openStoreDb(
  dataDir: string,
  log: Logger,
  clock: () => number,
): Promise<StoreDb> {
  await mkdir(dirname(dataDir), { recursive: true });
  try {
    return await tryOpen(dataDir);
  } catch (err) {
    if (isLocked(err)) {
      throw new StoreInUseError(
        `cache store ${dataDir} is locked by another process (is another hub running?): ${describe(err)}`,
        { cause: err },
      );
    }
    const aside = `${dataDir}.corrupt-${stamp(clock())}`;
    try {
      await rename(dataDir, aside);
    } catch (renameErr) {
      throw new Error(
        `cache store ${dataDir} cannot be opened (${describe(err)}) and moving it aside to ${aside} failed: ${describe(renameErr)}`,
        { cause: renameErr },
      );
    }
    log.error(
      { dataDir, movedTo: aside, err: describe(err) },
      `CACHE STORE UNUSABLE: ${dataDir} could not be opened (${describe(err)}); moved it aside to ${aside}; ` +
        'the node has lost its cache: offline it answers nothing it has not cached since (503s), until upstream is back',
    );
    const db = await tryOpen(dataDir);
    const loss: CacheLoss = {
      movedTo: aside,
      at: new Date(clock()).toISOString(),
      reason: describe(err),
    };
    try {
      await db.put(CACHE_LOSS_KEY, encodeRecord(loss), { sync: true });
    } catch (putErr) {
      await db.close();
      throw putErr;
    }
    return db;
  }
}
