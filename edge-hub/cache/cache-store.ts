import { rm } from 'node:fs/promises';
import type { Logger } from '../../src/log.ts';
import { qualifiedResource } from '../../src/kube/status.ts';
import {
  applyGet,
  applyList,
  applyListItems,
  applyLocalWrite,
  applyNotFound,
  applyWatchEvents,
  completeList,
  StoreCommit,
  type ListCompletion,
  type ListReplacement,
  type LocalMutation,
  type LocalWriteResult,
  type StoreChange,
  type WatchEventInput,
} from './apply-rules.ts';
import type { CacheMetrics } from './cache-metrics.ts';
import {
  ALL_INTENTS_PREFIX,
  ALL_RESOURCE_RECORDS_PREFIX,
  ALL_SCOPES_PREFIX,
  CACHE_LOSS_KEY,
  MAX_RV_KEY,
  keys,
  namespacePrefix,
  parseResourceKey,
  prefixRange,
  resourcePath,
  type ResourceRef,
} from './keys.ts';
import { sameFingerprint, type ListFingerprint } from './list-fingerprint.ts';
import {
  dropStagedLists,
  ListStaging,
  readStaged,
  STAGED_CHUNK_BYTES,
  stagingFile,
} from './list-staging.ts';
import { openStoreDb, type StoreDb } from './open-level.ts';
import type { PreparedObject } from './prepared-object.ts';
import {
  ResourceState,
  createEntry,
  encodeResourceRecord,
  encodeScopeRecord,
  scopeKeyOf,
  type ResourceEntry,
  type ScopeState,
} from './resource-state.ts';
import { maxResourceVersion } from './resource-version.ts';
import { compileScope, type CompiledScope } from './scope.ts';
import {
  cacheLossSchema,
  decodeMeta,
  decodeRecord,
  encodeRecord,
  listIntentSchema,
  resourceRecordSchema,
  scopeRecordSchema,
  tokenRecordSchema,
  tombstoneRecordSchema,
  type CacheLoss,
  type ListIntent,
  type TokenRecord,
} from './store-records.ts';
import { DeferredRecords, WriteQueue, writeBatch, type Deferred } from './write-queue.ts';

/**
 * Entries per iterator round trip. classic-level reserves room for this many
 * entries per iterator and frees it only when V8 collects the iterator, which
 * V8 (not seeing native memory) is in no hurry to do: at 1,000, a node LIST
 * every few seconds grew the hub by ~50 KB each (136 MB after 1,100 LISTs).
 * At 64, 1,200 more LISTs add ~9 MB (128: ~16 MB), and the LIST of all
 * 10,000 pods takes ~160 round trips.
 */
const ITERATOR_BATCH = 64;
/**
 * Entries per round trip of an unfiltered whole-resource list (iterateBodies):
 * rare (no node component lists every pod), large, and its 1 MiB read-ahead
 * holds ~220 pods anyway. Against 64: 10,000 pods in ~40 round trips instead
 * of ~160, offline LIST p99 ~20-30 % lower (phase-driver.ts offline).
 */
const WHOLE_LIST_BATCH = 256;
/**
 * Bookkeeping that changes on every recorded answer (lastSync, a scope's
 * newer list resourceVersion over the same objects) waits at most this long
 * for a write that changes objects before it is synced on its own.
 */
const DEFAULT_BOOKKEEPING_FLUSH_MS = 30_000;

export type ChangeListener = (changes: readonly StoreChange[]) => void;

/** An object's stored bytes as read at some moment (objectToCompare). */
export interface StoredCopy {
  readonly entry: ResourceEntry;
  readonly id: string;
  readonly bytes: Buffer;
  /** The resource's generation then: unchanged, so is the object. */
  readonly generation: number;
}

type Op =
  | { type: 'replace'; entry: ResourceEntry; input: ListReplacement; done: Deferred<void> }
  | {
      type: 'events';
      entry: ResourceEntry;
      scope: CompiledScope;
      events: readonly WatchEventInput[];
      kind: string | null;
      done: Deferred<void>;
    }
  | {
      type: 'upsert';
      entry: ResourceEntry;
      object: PreparedObject;
      kind: string | null;
      done: Deferred<void>;
    }
  | { type: 'delete'; entry: ResourceEntry; id: string; done: Deferred<void> }
  | {
      type: 'local';
      entry: ResourceEntry;
      id: string;
      mutate: LocalMutation;
      done: Deferred<LocalWriteResult>;
    }
  | {
      type: 'staged';
      entry: ResourceEntry;
      staging: { txid: string };
      input: ListCompletion;
      /** The intent is on disk already: a replacement a crash cut, finished at open. */
      recovering: boolean;
      done: Deferred<void>;
    }
  | { type: 'token'; key: string; record: TokenRecord; done: Deferred<void> }
  | { type: 'flush'; done: Deferred<void> };

function entryKey(component: string, ref: ResourceRef): string {
  return `${component}\u0000${resourcePath(ref)}`;
}

/**
 * Stored copies of objects read for comparison, kept while their resource is
 * unchanged: kubelet GETs its own Node and Lease every few seconds, and a
 * LevelDB read of each (a fresh buffer, ~30 µs) cost more than the compare.
 * A handful of objects, and none large: a few hundred KiB at most.
 */
const COMPARE_COPIES = 32;
const MAX_COMPARE_COPY_BYTES = 16 * 1024;

/**
 * The hub's durable cache: LevelDB is the truth, memory holds what makes
 * reads fast (per-resource metadata, scope membership, indexes), loaded on
 * first use so a store of 100,000 objects opens at once.
 *
 * Every write goes through one queue (write-queue.ts): all operations
 * waiting when a commit starts are applied to memory by the apply rules
 * (apply-rules.ts) and written as one synced LevelDB batch. A list
 * replacement or a run of watch events is therefore always inside one
 * atomic batch; kill -9 leaves either the state before or after it. A list
 * too large to hold (stageList) is the exception: committed alone, in
 * batches, after a synced intent that lets the next open finish it.
 */
export class CacheStore {
  private readonly db: StoreDb;
  private readonly log: Logger;
  private readonly clock: () => number;
  private metrics: CacheMetrics | undefined;
  private readonly entries = new Map<string, ResourceEntry>();
  private readonly listeners = new Map<ResourceEntry, Set<ChangeListener>>();
  /** A staged list is written in batches of its own: it is committed alone. */
  private readonly queue = new WriteQueue<Op>(
    (ops) => this.commitGroup(ops),
    (op) => op.type === 'staged',
  );
  /** Values written by the batch being committed, so readers never see memory ahead of disk. */
  private readonly overlay = new Map<string, Buffer | null>();
  /** Object key -> its stored bytes and its resource's generation when read (objectToCompare). */
  private readonly compareCopies = new Map<string, { bytes: Buffer; generation: number }>();
  /** Scope and resource records changed by answers that changed nothing else. */
  private readonly bookkeeping: DeferredRecords<ResourceEntry | ScopeState>;
  private readonly stagedChunkBytes: number;
  /** The store's directory: staged lists are files in it (list-staging.ts). */
  private readonly dataDir: string;
  private globalMaxRv = '';
  private lostCache: CacheLoss | undefined;
  private closed = false;

  private constructor(
    db: StoreDb,
    log: Logger,
    clock: () => number,
    bookkeepingFlushMs: number,
    stagedChunkBytes: number,
    dataDir: string,
  ) {
    this.db = db;
    this.log = log;
    this.clock = clock;
    this.stagedChunkBytes = stagedChunkBytes;
    this.dataDir = dataDir;
    this.bookkeeping = new DeferredRecords({
      flushMs: bookkeepingFlushMs,
      encode: (source) =>
        'scope' in source ? encodeScopeRecord(source) : encodeResourceRecord(source),
      flush: () => {
        if (this.closed) return;
        this.enqueue<void>((done) => ({ type: 'flush', done })).catch((err: unknown) => {
          this.log.warn({ err: String(err) }, 'syncing cache bookkeeping records failed');
        });
      },
    });
  }

  static async open(opts: {
    dataDir: string;
    log: Logger;
    clock?: () => number;
    /** How long bookkeeping-only changes may wait for a batch (default 30 s). */
    bookkeepingFlushMs?: number;
    /** Batch size of staged list items, written and applied (default 1 MiB; tests make it small). */
    stagedChunkBytes?: number;
  }): Promise<CacheStore> {
    const clock = opts.clock ?? Date.now;
    const db = await openStoreDb(opts.dataDir, opts.log, clock);
    const store = new CacheStore(
      db,
      opts.log,
      clock,
      opts.bookkeepingFlushMs ?? DEFAULT_BOOKKEEPING_FLUSH_MS,
      opts.stagedChunkBytes ?? STAGED_CHUNK_BYTES,
      opts.dataDir,
    );
    await store.loadDirectory();
    await store.finishStagedLists();
    return store;
  }

  /**
   * Replacements from staged items that a crash cut after they were decided
   * are finished before anything reads the store; staged items no decided
   * replacement claims are dropped.
   */
  private async finishStagedLists(): Promise<void> {
    const intents: Array<{ txid: string; intent: ListIntent }> = [];
    for await (const [key, value] of this.db.iterator(prefixRange(ALL_INTENTS_PREFIX))) {
      const intent = decodeRecord(listIntentSchema, value, `list intent ${key}`);
      const txid = decodeURIComponent(key.slice(ALL_INTENTS_PREFIX.length));
      if (intent instanceof Error)
        this.log.warn({ key, err: intent.message }, 'dropping unreadable list intent');
      else intents.push({ txid, intent });
    }
    for (const { txid, intent } of intents) {
      const ref = { group: intent.group, version: intent.version, resource: intent.resource };
      const scope = compileScope(ref, intent.namespace, intent.labelSelector, intent.fieldSelector);
      if (scope instanceof Error) {
        await this.db.del(keys.listIntent(txid));
        continue;
      }
      this.log.info(
        { component: intent.component, resource: qualifiedResource(ref), scope: scope.id },
        'finishing a list replacement a crash cut',
      );
      const entry = this.ensureEntry(intent.component, ref);
      try {
        await this.enqueue<void>((done) => ({
          type: 'staged',
          entry,
          staging: { txid },
          input: { scope, rv: intent.resourceVersion, kind: intent.kind },
          recovering: true,
          done,
        }));
      } catch {
        // Logged by commitStaged. Not finishable: the scope is forgotten (503s offline), never half answered.
        entry.scopes.delete(scope.id);
        await this.db.batch([
          { type: 'del', key: keys.listIntent(txid) },
          { type: 'del', key: keys.scopes(entry.component, ref) + encodeURIComponent(scope.id) },
        ]);
      }
    }
    await dropStagedLists(this.dataDir, new Set());
  }

  setMetrics(metrics: CacheMetrics): void {
    this.metrics = metrics;
  }

  /** Reads the small per-resource and per-scope records; object state stays on disk. */
  private async loadDirectory(): Promise<void> {
    const maxRv = await this.db.get(MAX_RV_KEY);
    this.globalMaxRv = maxRv?.toString() ?? '';
    const loss = await this.db.get(CACHE_LOSS_KEY);
    if (loss !== undefined) {
      const record = decodeRecord(cacheLossSchema, loss, 'cache loss record');
      this.lostCache =
        record instanceof Error
          ? { movedTo: 'unknown', at: 'unknown', reason: record.message }
          : record;
    }
    for await (const [key, value] of this.db.iterator(prefixRange(ALL_RESOURCE_RECORDS_PREFIX))) {
      const parsed = parseResourceKey(key);
      const record = decodeRecord(resourceRecordSchema, value, `resource record ${key}`);
      if (parsed === undefined || record instanceof Error) {
        this.log.warn({ key, err: String(record) }, 'skipping unreadable resource record');
        continue;
      }
      const entry = this.ensureEntry(parsed.component, parsed.ref);
      entry.kind = record.kind;
      entry.objects = record.objects;
      entry.lastSync = record.lastSync;
    }
    for await (const [key, value] of this.db.iterator(prefixRange(ALL_SCOPES_PREFIX))) {
      const parsed = parseResourceKey(key);
      if (parsed === undefined) {
        this.log.warn({ key }, 'skipping unreadable scope record');
        continue;
      }
      const scope = this.decodeScope(parsed.ref, key, value);
      if (scope !== undefined) {
        this.ensureEntry(parsed.component, parsed.ref).scopes.set(scope.scope.id, scope);
      }
    }
  }

  /** A scope record as the in-memory scope state; undefined (and a warning) when unusable. */
  private decodeScope(ref: ResourceRef, key: string, value: Buffer): ScopeState | undefined {
    const record = decodeRecord(scopeRecordSchema, value, `scope record ${key}`);
    if (record instanceof Error) {
      this.log.warn({ key, err: record.message }, 'skipping unreadable scope record');
      return undefined;
    }
    const scope = compileScope(ref, record.namespace, record.labelSelector, record.fieldSelector);
    if (scope instanceof Error) {
      this.log.warn({ key, err: scope.message }, 'skipping scope whose selectors no longer parse');
      return undefined;
    }
    return {
      scope,
      rv: record.resourceVersion,
      complete: record.complete,
      syncedAt: record.syncedAt,
    };
  }

  private ensureEntry(component: string, ref: ResourceRef): ResourceEntry {
    const key = entryKey(component, ref);
    let entry = this.entries.get(key);
    if (entry === undefined) {
      entry = createEntry(component, ref);
      this.entries.set(key, entry);
    }
    return entry;
  }

  // ---------------------------------------------------------------- reads

  entry(component: string, ref: ResourceRef): ResourceEntry | undefined {
    return this.entries.get(entryKey(component, ref));
  }

  allEntries(): Iterable<ResourceEntry> {
    return this.entries.values();
  }

  /** The kind any component's cache recorded for this resource. */
  recordedKind(ref: ResourceRef): string | undefined {
    for (const entry of this.entries.values()) {
      if (
        entry.kind !== null &&
        entry.ref.group === ref.group &&
        entry.ref.version === ref.version &&
        entry.ref.resource === ref.resource
      ) {
        return entry.kind;
      }
    }
    return undefined;
  }

  /** Set when this store replaced one that could not be opened (open-level.ts). */
  loss(): CacheLoss | undefined {
    return this.lostCache;
  }

  /** The cache saw this object deleted upstream (a tombstone), so its absence is known. */
  async sawDeletion(entry: ResourceEntry, id: string): Promise<boolean> {
    if (entry.state !== undefined) return entry.state.tombstones.has(id);
    const key = entry.prefix.tombstones + id;
    const pending = this.overlay.get(key);
    if (pending !== undefined) return pending !== null;
    return (await this.db.get(key)) !== undefined;
  }

  /** Highest decimal resourceVersion the store has seen from anywhere. */
  maxResourceVersion(): string {
    return this.globalMaxRv;
  }

  /** The in-memory state of a resource, loading it from disk the first time. */
  async stateOf(entry: ResourceEntry): Promise<ResourceState> {
    if (entry.state !== undefined) return entry.state;
    entry.loading ??= this.loadState(entry).then(
      (state) => {
        entry.state = state;
        entry.loading = undefined;
        return state;
      },
      (err: unknown) => {
        entry.loading = undefined;
        throw err;
      },
    );
    return entry.loading;
  }

  private async loadState(entry: ResourceEntry): Promise<ResourceState> {
    const state = new ResourceState();
    const metaPrefix = keys.metas(entry.component, entry.ref);
    await this.scan(metaPrefix, (key, value) => {
      const meta = decodeMeta(value);
      if (meta instanceof Error) {
        this.log.warn({ key, err: meta.message }, 'skipping unreadable object meta record');
        return;
      }
      state.setMeta(key.slice(metaPrefix.length), meta);
    });
    const memberBase = keys.members(entry.component, entry.ref, '');
    // members(...,'') ends with '//'; the scope segment starts right after the resource path.
    const base = memberBase.slice(0, -1);
    await this.scan(base, (key) => {
      const rest = key.slice(base.length);
      const slash = rest.indexOf('/');
      if (slash < 0) return;
      state.addMember(decodeURIComponent(rest.slice(0, slash)), rest.slice(slash + 1));
    });
    const tombPrefix = keys.tombstones(entry.component, entry.ref);
    await this.scan(tombPrefix, (key, value) => {
      const record = decodeRecord(tombstoneRecordSchema, value, `tombstone ${key}`);
      if (record instanceof Error) return;
      state.tombstones.set(key.slice(tombPrefix.length), {
        rv: record.rv,
        labels: record.labels,
        fields: record.fields,
      });
      state.maxRv = maxResourceVersion(state.maxRv, record.rv);
    });
    entry.objects = state.meta.size;
    return state;
  }

  private async scan(prefix: string, each: (key: string, value: Buffer) => void): Promise<void> {
    const it = this.db.iterator({ ...prefixRange(prefix), highWaterMarkBytes: 1 << 20 });
    try {
      for (;;) {
        const batch = await it.nextv(ITERATOR_BATCH);
        if (batch.length === 0) break;
        for (const [key, value] of batch) each(key, value);
      }
    } finally {
      await it.close();
    }
  }

  /** Raw JSON of one object, or undefined. */
  readObject(component: string, ref: ResourceRef, id: string): Buffer | undefined {
    const key = keys.objects(component, ref) + id;
    const pending = this.overlay.get(key);
    if (pending !== undefined) return pending ?? undefined;
    // A point read from LevelDB's cache takes microseconds: cheaper than a trip through the thread pool.
    return this.db.getSync(key) ?? undefined;
  }

  async readObjects(
    component: string,
    ref: ResourceRef,
    ids: readonly string[],
  ): Promise<Array<Buffer | undefined>> {
    const prefix = keys.objects(component, ref);
    const values = await this.db.getMany(ids.map((id) => prefix + id));
    return values.map((value, i) => {
      const pending = this.overlay.get(prefix + (ids[i] ?? ''));
      if (pending !== undefined) return pending ?? undefined;
      return value ?? undefined;
    });
  }

  /**
   * Objects in key order, in batches, optionally one namespace only and
   * starting after an object id (for `continue`). Streams from LevelDB so a
   * list of 46 MB never sits in memory whole.
   */
  async *iterateObjects(
    component: string,
    ref: ResourceRef,
    namespace: string,
    afterId: string | undefined,
  ): AsyncGenerator<Array<[string, Buffer]>> {
    const base = keys.objects(component, ref);
    const prefix = namespace === '' ? base : base + namespacePrefix(namespace);
    const range = prefixRange(prefix);
    if (afterId !== undefined && base + afterId > range.gt) range.gt = base + afterId;
    const it = this.db.iterator({ ...range, highWaterMarkBytes: 1 << 20, fillCache: false });
    try {
      for (;;) {
        const batch = await it.nextv(ITERATOR_BATCH);
        if (batch.length === 0) break;
        yield batch.map(([key, value]) => [key.slice(base.length), value]);
      }
    } finally {
      await it.close();
    }
  }

  /** Object bodies only, in key order: the cheapest way to stream a whole unfiltered list. */
  async *iterateBodies(
    component: string,
    ref: ResourceRef,
    namespace: string,
  ): AsyncGenerator<Buffer[]> {
    const base = keys.objects(component, ref);
    const prefix = namespace === '' ? base : base + namespacePrefix(namespace);
    const it = this.db.values({
      ...prefixRange(prefix),
      highWaterMarkBytes: 1 << 20,
      fillCache: false,
    });
    try {
      for (;;) {
        const batch = await it.nextv(WHOLE_LIST_BATCH);
        if (batch.length === 0) break;
        yield batch;
      }
    } finally {
      await it.close();
    }
  }

  /** Sorted ids a scope's list/watch delivered, without loading the resource when it is cold. */
  async scopeMembers(entry: ResourceEntry, scopeId: string): Promise<string[]> {
    if (entry.state !== undefined) return [...(entry.state.members.get(scopeId) ?? [])].sort();
    const prefix = keys.members(entry.component, entry.ref, scopeId);
    const out: string[] = [];
    const it = this.db.keys({ ...prefixRange(prefix) });
    try {
      for (;;) {
        const batch = await it.nextv(ITERATOR_BATCH);
        if (batch.length === 0) break;
        for (const key of batch) out.push(key.slice(prefix.length));
      }
    } finally {
      await it.close();
    }
    return out;
  }

  readToken(key: string): TokenRecord | undefined {
    const pending = this.overlay.get(key);
    const value = pending !== undefined ? (pending ?? undefined) : this.db.getSync(key);
    if (value === undefined) return undefined;
    const record = decodeRecord(tokenRecordSchema, value, 'token record');
    return record instanceof Error ? undefined : record;
  }

  /** Calls `listener` after every commit that changed objects of this component's resource. */
  subscribe(component: string, ref: ResourceRef, listener: ChangeListener): () => void {
    const entry = this.ensureEntry(component, ref);
    let set = this.listeners.get(entry);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(entry, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  // --------------------------------------------------------------- writes

  replaceList(component: string, ref: ResourceRef, input: ListReplacement): Promise<void> {
    return this.enqueue<void>((done) => ({
      type: 'replace',
      entry: this.ensureEntry(component, ref),
      input,
      done,
    }));
  }

  applyWatchEvents(
    component: string,
    ref: ResourceRef,
    scope: CompiledScope,
    events: readonly WatchEventInput[],
    kind: string | null,
  ): Promise<void> {
    return this.enqueue<void>((done) => ({
      type: 'events',
      entry: this.ensureEntry(component, ref),
      scope,
      events,
      kind,
      done,
    }));
  }

  upsertObject(
    component: string,
    ref: ResourceRef,
    object: PreparedObject,
    kind: string | null,
  ): Promise<void> {
    return this.enqueue<void>((done) => ({
      type: 'upsert',
      entry: this.ensureEntry(component, ref),
      object,
      kind,
      done,
    }));
  }

  /**
   * Starts a list recorded item by item: its items go to a staging file as they come
   * (list-staging.ts), invisible until replaceStagedList replaces the scope
   * with them, so a list of any size is never held in memory.
   */
  stageList(): ListStaging {
    return new ListStaging(this.dataDir, this.stagedChunkBytes);
  }

  /**
   * Replaces a scope with a staged list's items, as replaceList does. It is
   * applied in batches of stagedChunkBytes, after a synced intent record:
   * a crash in between leaves the intent, and the next open finishes the
   * replacement from the staged items, so the scope is old or new.
   */
  async replaceStagedList(
    component: string,
    ref: ResourceRef,
    staging: ListStaging,
    input: ListCompletion,
  ): Promise<void> {
    try {
      await staging.complete();
    } catch (err) {
      staging.discard();
      throw err;
    }
    return this.enqueue<void>((done) => ({
      type: 'staged',
      entry: this.ensureEntry(component, ref),
      staging,
      input,
      recovering: false,
      done,
    }));
  }

  deleteObject(component: string, ref: ResourceRef, id: string): Promise<void> {
    return this.enqueue<void>((done) => ({
      type: 'delete',
      entry: this.ensureEntry(component, ref),
      id,
      done,
    }));
  }

  /**
   * A read-modify-write done inside the commit loop (so no other write can
   * interleave), for writes acknowledged offline. The new object gets a
   * resourceVersion above everything the store has seen.
   */
  writeLocal(
    component: string,
    ref: ResourceRef,
    id: string,
    mutate: LocalMutation,
  ): Promise<LocalWriteResult> {
    return this.enqueue<LocalWriteResult>((done) => ({
      type: 'local',
      entry: this.ensureEntry(component, ref),
      id,
      mutate,
      done,
    }));
  }

  putToken(key: string, record: TokenRecord): Promise<void> {
    return this.enqueue<void>((done) => ({ type: 'token', key, record, done }));
  }

  /**
   * The stored copy of an object, read when its answer starts so that the
   * answer can be compared as it streams (cache/buffered-body.ts); undefined
   * when it is not cached or a write for its resource is waiting.
   */
  objectToCompare(component: string, ref: ResourceRef, id: string): StoredCopy | undefined {
    const entry = this.entries.get(entryKey(component, ref));
    if (entry === undefined || entry.queued > 0 || this.closed) return undefined;
    const key = entry.prefix.objects + id;
    const kept = this.compareCopies.get(key);
    // Every write of the resource moves its generation: the same generation, the same bytes.
    if (kept !== undefined && kept.generation === entry.generation) {
      return { entry, id, bytes: kept.bytes, generation: kept.generation };
    }
    const bytes = this.readObject(component, ref, id);
    if (bytes === undefined) return undefined;
    this.keepCompareCopy(key, bytes, entry.generation);
    return { entry, id, bytes, generation: entry.generation };
  }

  private keepCompareCopy(key: string, bytes: Buffer, generation: number): void {
    if (bytes.length > MAX_COMPARE_COPY_BYTES) return;
    this.compareCopies.delete(key); // re-inserted last: the oldest goes first
    this.compareCopies.set(key, { bytes, generation });
    if (this.compareCopies.size > COMPARE_COPIES) {
      const oldest = this.compareCopies.keys().next().value;
      if (oldest !== undefined) this.compareCopies.delete(oldest);
    }
  }

  /**
   * An upstream answer that repeated `copy` (objectToCompare), the object
   * still stored so, with no write for it waiting: only lastSync moves (in
   * memory, synced later). True when so; the caller then skips parsing and
   * queueing it, which would change nothing.
   */
  noteUnchangedObject(copy: StoredCopy): boolean {
    const entry = copy.entry;
    if (entry.queued > 0 || this.closed) return false;
    if (entry.generation !== copy.generation) {
      // Something else of this resource was written meanwhile: is this object still the same?
      const stored = this.readObject(entry.component, entry.ref, copy.id);
      if (stored === undefined || !stored.equals(copy.bytes)) return false;
      this.keepCompareCopy(entry.prefix.objects + copy.id, copy.bytes, entry.generation);
    }
    entry.lastSync = new Date(this.clock()).toISOString();
    // Encoded when written: a GET answered a hundred times a second changes only lastSync.
    this.deferRecord(entry.prefix.record, entry);
    return true;
  }

  /**
   * The bytes of the last one-page LIST recorded for a scope, while nothing
   * has touched the resource since and they are kept whole (small lists):
   * what a repeated LIST is compared with as it streams.
   */
  lastListBody(component: string, ref: ResourceRef, scopeId: string): Buffer | undefined {
    const entry = this.entries.get(entryKey(component, ref));
    if (entry === undefined || entry.queued > 0 || this.closed) return undefined;
    const last = entry.scopes.get(scopeId)?.lastList;
    if (last === undefined || last.generation !== entry.generation) return undefined;
    return 'body' in last.fingerprint ? last.fingerprint.body : undefined;
  }

  /**
   * A one-page LIST answered with exactly the bytes of the last one recorded
   * for this scope, nothing having touched the resource since: replacing the
   * scope with it again would change nothing but syncedAt and lastSync (in
   * memory, synced later). True when so.
   */
  noteUnchangedList(
    component: string,
    ref: ResourceRef,
    scopeId: string,
    fingerprint: ListFingerprint,
  ): boolean {
    const entry = this.entries.get(entryKey(component, ref));
    if (entry === undefined || entry.queued > 0 || this.closed) return false;
    const s = entry.scopes.get(scopeId);
    const last = s?.lastList;
    if (
      s === undefined ||
      last === undefined ||
      last.generation !== entry.generation ||
      !sameFingerprint(last.fingerprint, fingerprint)
    ) {
      return false;
    }
    const now = new Date(this.clock()).toISOString();
    s.syncedAt = now;
    entry.lastSync = now;
    // Both encoded when written, as they stand then.
    this.deferRecord(scopeKeyOf(entry, s), s);
    this.deferRecord(entry.prefix.record, entry);
    return true;
  }

  private enqueue<T>(make: (done: Deferred<T>) => Op): Promise<T> {
    if (this.closed) return Promise.reject(new Error('cache store is closed'));
    const entries: ResourceEntry[] = [];
    const done = new Promise<T>((resolve, reject) => {
      const op = make({ resolve, reject });
      if ('entry' in op) {
        op.entry.queued++;
        entries.push(op.entry);
      }
      this.queue.push(op);
    });
    const settled = done.then(
      () => undefined,
      () => undefined,
    );
    for (const entry of entries) entry.settled = settled;
    return done;
  }

  /**
   * Resolves once every write already queued for this component's resource
   * is committed (or failed). An answer the hub relayed is queued as it
   * passes, so a read after this sees it: a deletion a client was shown is
   * never answered back to it from the cache, memory and disk agreeing.
   */
  async writesSettled(component: string, ref: ResourceRef): Promise<void> {
    const entry = this.entries.get(entryKey(component, ref));
    if (entry !== undefined) await entry.settled;
  }

  /** A bookkeeping record to sync with the next batch, or on its own within bookkeepingFlushMs. */
  private deferRecord(key: string, value: Buffer | ResourceEntry | ScopeState): void {
    this.bookkeeping.defer(key, value);
  }

  private async commitGroup(ops: Op[]): Promise<void> {
    try {
      const first = ops[0];
      if (first?.type === 'staged') await this.commitStaged(first);
      else await this.commit(ops);
    } finally {
      // Only now: until its batch is on disk, an entry's stored bytes may still change.
      for (const op of ops) if ('entry' in op) op.entry.queued--;
    }
  }

  private newCommit(): StoreCommit {
    return new StoreCommit({
      now: new Date(this.clock()).toISOString(),
      maxRv: this.globalMaxRv,
      written: this.overlay,
      watched: (entry) => this.listeners.has(entry),
    });
  }

  /** Applies a group of operations to memory and writes them as one synced batch. */
  private async commit(ops: Op[]): Promise<void> {
    const maxRvBefore = this.globalMaxRv;
    const commit = this.newCommit();
    const results: Array<() => void> = [];
    const accepted: Op[] = [];
    for (const op of ops) {
      try {
        if (op.type === 'token') {
          commit.put(op.key, encodeRecord(op.record));
          results.push(() => op.done.resolve());
        } else if (op.type === 'flush') {
          commit.recordsUrgent = true;
          results.push(() => op.done.resolve());
        } else if (op.type === 'staged') {
          throw new Error('a staged list is committed alone (commitStaged)');
        } else {
          const state = await this.stateOf(op.entry);
          results.push(this.apply(op, state, commit));
        }
        accepted.push(op);
      } catch (err) {
        op.done.reject(err);
      } finally {
        this.globalMaxRv = commit.maxRv;
      }
    }
    await this.writeCommit(commit, { results, accepted }, maxRvBefore, true);
  }

  /**
   * Applies a staged list (replaceStagedList): a synced intent, the items in
   * unsynced batches of stagedChunkBytes, then one synced batch that drops
   * what the list no longer holds, completes the scope and removes the
   * intent. Memory holds one batch of items, never the list. Offline reads
   * of the resource wait for it (writesSettled), so none sees it half applied.
   */
  private async commitStaged(op: Extract<Op, { type: 'staged' }>): Promise<void> {
    const { entry, input } = op;
    const txid = op.staging.txid;
    // Memory (reloaded from disk) may hold the list half applied: until the
    // next open finishes it, the scope answers nothing offline.
    const failed = (err: unknown, logged: boolean) => {
      const s = entry.scopes.get(input.scope.id);
      if (s !== undefined) s.complete = false;
      if (!logged) {
        this.log.error(
          { err: String(err), resource: qualifiedResource(entry.ref), scope: input.scope.id },
          'replacing a scope from a staged list failed; the store finishes it when next opened',
        );
      }
      op.done.reject(err);
    };
    try {
      const state = await this.stateOf(entry);
      if (!op.recovering) {
        const intent: ListIntent = {
          component: entry.component,
          ...entry.ref,
          namespace: input.scope.def.namespace,
          labelSelector: input.scope.def.labelSelector,
          fieldSelector: input.scope.def.fieldSelector,
          resourceVersion: input.rv,
          kind: input.kind,
        };
        await writeBatch(this.db, [
          { type: 'put', key: keys.listIntent(txid), value: encodeRecord(intent) },
        ]);
      }
      const listed = new Set<string>();
      const none = { results: [], accepted: [] };
      for await (const items of readStaged(this.dataDir, txid, this.stagedChunkBytes)) {
        const maxRvBefore = this.globalMaxRv;
        const commit = this.newCommit();
        // Items are views of a buffer read into again: listeners may keep what they are given.
        const own = this.listeners.has(entry)
          ? items.map((item) => ({ ...item, raw: Buffer.from(item.raw) }))
          : items;
        applyListItems(entry, state, input.scope, own, listed, commit);
        this.globalMaxRv = commit.maxRv;
        if (!(await this.writeCommit(commit, none, maxRvBefore, false))) {
          failed(new Error('a batch of staged list items could not be written'), true);
          return;
        }
      }
      const maxRvBefore = this.globalMaxRv;
      const commit = this.newCommit();
      commit.recordsUrgent = true;
      completeList(entry, state, input, listed, commit);
      commit.del(keys.listIntent(txid));
      this.globalMaxRv = commit.maxRv;
      if (!(await this.writeCommit(commit, { results: [], accepted: [op] }, maxRvBefore, true))) {
        failed(new Error('the last batch of a staged list could not be written'), true);
        return;
      }
      // A file left over is dropped when the store is next opened.
      await rm(stagingFile(this.dataDir, txid), { force: true }).catch(() => undefined);
      op.done.resolve();
    } catch (err) {
      await this.reloadEntry(entry);
      failed(err, false);
    }
  }

  /**
   * Writes what a commit applied (one LevelDB batch, synced when `sync`),
   * then settles its operations and tells listeners. False when the batch
   * failed: `accepted` are rejected and the touched resources reloaded.
   */
  private async writeCommit(
    commit: StoreCommit,
    settle: { results: ReadonlyArray<() => void>; accepted: readonly Op[] },
    maxRvBefore: string,
    sync: boolean,
  ): Promise<boolean> {
    const { results, accepted } = settle;
    const records = commit.records();
    if (this.globalMaxRv !== maxRvBefore) {
      commit.put(MAX_RV_KEY, Buffer.from(this.globalMaxRv));
    }
    if (commit.ops.length === 0 && !commit.recordsUrgent) {
      // Nothing but bookkeeping changed: no synced write for it now.
      for (const [key, value] of records) this.deferRecord(key, value);
      for (const result of results) result();
      return true;
    }
    for (const [key, value] of records) this.bookkeeping.set(key, value);
    for (const op of this.bookkeeping.take()) commit.ops.push(op);
    if (commit.ops.length === 0) {
      for (const result of results) result();
      return true;
    }
    const started = performance.now();
    try {
      await writeBatch(this.db, commit.ops, sync);
    } catch (err) {
      this.overlay.clear();
      this.log.error(
        { err: String(err), operations: commit.ops.length },
        'cache store batch failed; in-memory state of the touched resources is reloaded from disk',
      );
      for (const entry of commit.touched) await this.reloadEntry(entry);
      this.globalMaxRv = maxRvBefore;
      for (const op of accepted) {
        op.done.reject(new Error(`cache store write failed: ${String(err)}`, { cause: err }));
      }
      return false;
    }
    this.overlay.clear();
    this.metrics?.observeCommit((performance.now() - started) / 1000, commit.ops.length);
    for (const result of results) result();
    for (const [entry, changes] of commit.changes) {
      for (const listener of this.listeners.get(entry) ?? []) {
        try {
          listener(changes);
        } catch (err) {
          this.log.warn({ err: String(err) }, 'cache change listener failed');
        }
      }
    }
    return true;
  }

  /** One operation on a resource, by its apply rule; returns what settles its caller. */
  private apply(
    op: Exclude<Op, { type: 'token' | 'flush' | 'staged' }>,
    state: ResourceState,
    commit: StoreCommit,
  ): () => void {
    const entry = op.entry;
    switch (op.type) {
      case 'replace':
        applyList(entry, state, op.input, commit);
        return () => op.done.resolve();
      case 'events':
        applyWatchEvents(entry, state, op.scope, op.events, op.kind, commit);
        return () => op.done.resolve();
      case 'upsert':
        applyGet(entry, state, op.object, op.kind, commit);
        return () => op.done.resolve();
      case 'delete':
        applyNotFound(entry, state, op.id, commit);
        return () => op.done.resolve();
      case 'local': {
        const current = state.meta.has(op.id)
          ? this.readObject(entry.component, entry.ref, op.id)
          : undefined;
        const result = applyLocalWrite(entry, state, op.id, current, op.mutate, commit);
        return () => op.done.resolve(result);
      }
    }
  }

  /** After a failed batch: forget memory that may be ahead of disk. */
  private async reloadEntry(entry: ResourceEntry): Promise<void> {
    entry.state = undefined;
    entry.scopes.clear();
    await this.scan(keys.scopes(entry.component, entry.ref), (key, value) => {
      const scope = this.decodeScope(entry.ref, key, value);
      if (scope !== undefined) entry.scopes.set(scope.scope.id, scope);
    });
  }

  /** Waits for queued writes, then closes LevelDB. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.idle();
    const ops = this.bookkeeping.take();
    if (ops.length > 0) {
      try {
        await writeBatch(this.db, ops);
      } catch (err) {
        this.log.warn({ err: String(err) }, 'syncing cache bookkeeping records at close failed');
      }
    }
    await this.db.close();
  }
}
