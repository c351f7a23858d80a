import { rm } from 'node:fs/promises';
import type { Logger } from '../../src/log.ts';
import { qualifiedResource, type KubeStatus } from '../../src/kube/status.ts';
import type { CacheMetrics } from './cache-metrics.ts';
import {
  ALL_INTENTS_PREFIX,
  ALL_RESOURCE_RECORDS_PREFIX,
  ALL_SCOPES_PREFIX,
  CACHE_LOSS_KEY,
  MAX_RV_KEY,
  apiVersionOf,
  keys,
  namespacePrefix,
  parseResourceKey,
  prefixRange,
  resourcePath,
  splitObjectId,
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
import { prepareObject, type PreparedObject } from './prepared-object.ts';
import { ResourceState, type ScopeState } from './resource-state.ts';
import {
  compareResourceVersions,
  maxResourceVersion,
  nextResourceVersion,
  notNewerThan,
  supersedes,
} from './resource-version.ts';
import { compileScope, scopeMatches, type CompiledScope } from './scope.ts';
import {
  cacheLossSchema,
  decodeMeta,
  decodeRecord,
  encodeMeta,
  encodeRecord,
  listIntentSchema,
  resourceRecordSchema,
  scopeRecordSchema,
  tokenRecordSchema,
  tombstoneRecordSchema,
  type CacheLoss,
  type ListIntent,
  type ObjectMeta,
  type ScopeRecord,
  type TokenRecord,
} from './store-records.ts';

/** Deletions remembered per resource; the oldest are forgotten beyond this. */
const TOMBSTONE_LIMIT = 5000;
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

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One committed change, as offline watches need it. */
export interface StoreChange {
  readonly type: ChangeType;
  readonly id: string;
  readonly namespace: string;
  readonly rv: string;
  readonly raw: Buffer;
  readonly labels: Record<string, string> | undefined;
  readonly fields: Record<string, string>;
}
export type ChangeListener = (changes: readonly StoreChange[]) => void;

/** One component's cache of one resource: always in memory, its objects' state loaded lazily. */
export interface ResourceEntry {
  readonly component: string;
  readonly ref: ResourceRef;
  kind: string | null;
  objects: number;
  lastSync: string | null;
  readonly scopes: Map<string, ScopeState>;
  state: ResourceState | undefined;
  loading: Promise<ResourceState> | undefined;
  /** Operations on this entry waiting in the write queue. */
  queued: number;
  /** Counts operations applied to this entry: a list digest is only good until the next one. */
  generation: number;
  /** This entry's key prefixes (keys.ts), built once: every written object needs several. */
  readonly prefix: EntryPrefixes;
}

/** An object's stored bytes as read at some moment (objectToCompare). */
export interface StoredCopy {
  readonly entry: ResourceEntry;
  readonly id: string;
  readonly bytes: Buffer;
  /** The resource's generation then: unchanged, so is the object. */
  readonly generation: number;
}

interface EntryPrefixes {
  readonly objects: string;
  readonly metas: string;
  readonly tombstones: string;
  /** The `r/` record's key: bookkeeping moves on every recognised answer. */
  readonly record: string;
  /** scope id -> members prefix */
  readonly members: Map<string, string>;
}

export interface ListReplacement {
  scope: CompiledScope;
  rv: string;
  items: readonly PreparedObject[];
  kind: string | null;
  /** Recognises this answer again when it came in one page (see noteUnchangedList). */
  fingerprint?: ListFingerprint;
}

/** A list whose items were staged (stageList): what replaces the scope besides them. */
export interface StagedListReplacement {
  scope: CompiledScope;
  rv: string;
  kind: string | null;
}

export interface WatchEventInput {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
  rv: string;
  object?: PreparedObject;
}

/** Builds the object a local write leaves behind, or refuses with the Status the apiserver would give. */
export type LocalMutation = (
  current: Buffer | undefined,
  newRv: string,
) => { object: unknown } | { refusal: KubeStatus };

export type LocalWriteResult = { raw: Buffer; created: boolean } | { refusal: KubeStatus };

interface Deferred<T> {
  resolve(value: T): void;
  reject(err: unknown): void;
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
      input: StagedListReplacement;
      /** The intent is on disk already: a replacement a crash cut, finished at open. */
      recovering: boolean;
      done: Deferred<void>;
    }
  | { type: 'token'; key: string; record: TokenRecord; done: Deferred<void> }
  | { type: 'flush'; done: Deferred<void> };

type BatchOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

/** What one group commit accumulates while its operations are applied. */
interface CommitContext {
  readonly ops: BatchOp[];
  readonly changes: Map<ResourceEntry, StoreChange[]>;
  readonly touched: Set<ResourceEntry>;
  /** Scope and resource records; written with `ops`, or later when `ops` is empty. */
  readonly records: Map<string, Buffer>;
  /** Scopes changed by this commit, encoded once at its end (a watch burst touches one many times). */
  readonly scopes: Map<ScopeState, ResourceEntry>;
  /** A record change that must be synced now (a scope became complete; a flush). */
  recordsUrgent: boolean;
  readonly now: string;
  results: Array<() => void>;
}

function entryKey(component: string, ref: ResourceRef): string {
  return `${component}\u0000${resourcePath(ref)}`;
}

const EMPTY = Buffer.alloc(0);

/** A bookkeeping record waiting to be synced: encoded, or a resource or scope encoded when written. */
type PendingRecord = Buffer | ResourceEntry | ScopeState;

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
 * Every write goes through one queue drained by a single loop: all operations
 * waiting when a commit starts are applied to memory and written as one
 * synced LevelDB batch (group commit). A list replacement or a run of watch
 * events is therefore always inside one atomic batch; kill -9 leaves either
 * the state before or after it.
 */
export class CacheStore {
  private readonly db: StoreDb;
  private readonly log: Logger;
  private readonly clock: () => number;
  private metrics: CacheMetrics | undefined;
  private readonly entries = new Map<string, ResourceEntry>();
  private readonly listeners = new Map<ResourceEntry, Set<ChangeListener>>();
  private readonly queue: Op[] = [];
  /** Values written by the batch being committed, so readers never see memory ahead of disk. */
  private readonly overlay = new Map<string, Buffer | null>();
  /** Object key -> its stored bytes and its resource's generation when read (objectToCompare). */
  private readonly compareCopies = new Map<string, { bytes: Buffer; generation: number }>();
  /**
   * Scope and resource records changed by commits that changed nothing else
   * (an answer identical to what is cached): they ride along with the next
   * batch, or a flush after `bookkeepingFlushMs`, instead of costing a synced
   * write per answer. Losing them to a crash loses only a lastSync time or a
   * newer list resourceVersion for the same objects.
   */
  private readonly pendingRecords = new Map<string, PendingRecord>();
  private readonly bookkeepingFlushMs: number;
  private readonly stagedChunkBytes: number;
  /** The store's directory: staged lists are files in it (list-staging.ts). */
  private readonly dataDir: string;
  private flushTimer: NodeJS.Timeout | undefined;
  private draining: Promise<void> | undefined;
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
    this.bookkeepingFlushMs = bookkeepingFlushMs;
    this.stagedChunkBytes = stagedChunkBytes;
    this.dataDir = dataDir;
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
      entry = {
        component,
        ref: { group: ref.group, version: ref.version, resource: ref.resource },
        kind: null,
        objects: 0,
        lastSync: null,
        scopes: new Map(),
        state: undefined,
        loading: undefined,
        queued: 0,
        generation: 0,
        prefix: {
          objects: keys.objects(component, ref),
          metas: keys.metas(component, ref),
          tombstones: keys.tombstones(component, ref),
          record: keys.resourceRecord(component, ref),
          members: new Map(),
        },
      };
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
    input: StagedListReplacement,
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
    this.deferRecord(this.scopeKey(entry, s), s);
    this.deferRecord(entry.prefix.record, entry);
    return true;
  }

  private enqueue<T>(make: (done: Deferred<T>) => Op): Promise<T> {
    if (this.closed) return Promise.reject(new Error('cache store is closed'));
    return new Promise<T>((resolve, reject) => {
      const op = make({ resolve, reject });
      if ('entry' in op) op.entry.queued++;
      this.queue.push(op);
      this.draining ??= this.drain();
    });
  }

  /** A bookkeeping record to sync with the next batch, or on its own within bookkeepingFlushMs. */
  private deferRecord(key: string, value: PendingRecord): void {
    this.pendingRecords.set(key, value);
    if (this.flushTimer !== undefined || this.closed) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      if (this.pendingRecords.size === 0 || this.closed) return;
      this.enqueue<void>((done) => ({ type: 'flush', done })).catch((err: unknown) => {
        this.log.warn({ err: String(err) }, 'syncing cache bookkeeping records failed');
      });
    }, this.bookkeepingFlushMs);
    this.flushTimer.unref();
  }

  /** The deferred records as batch operations (entries encoded now, as they stand); clears them. */
  private takePendingRecords(): BatchOp[] {
    const ops: BatchOp[] = [];
    for (const [key, value] of this.pendingRecords) {
      ops.push({
        type: 'put',
        key,
        value: Buffer.isBuffer(value)
          ? value
          : 'scope' in value
            ? this.scopeRecord(value)
            : this.resourceRecord(value),
      });
    }
    this.pendingRecords.clear();
    return ops;
  }

  private resourceRecord(entry: ResourceEntry): Buffer {
    return encodeRecord({ kind: entry.kind, objects: entry.objects, lastSync: entry.lastSync });
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
        // A staged list is applied in batches of its own: it is committed alone.
        const staged = this.queue.findIndex((op) => op.type === 'staged');
        const ops = this.queue.splice(0, staged < 0 ? this.queue.length : Math.max(staged, 1));
        try {
          const first = ops[0];
          if (first?.type === 'staged') await this.commitStaged(first);
          else await this.commit(ops);
        } finally {
          // Only now: until its batch is on disk, an entry's stored bytes may still change.
          for (const op of ops) if ('entry' in op) op.entry.queued--;
        }
      }
    } finally {
      this.draining = undefined;
    }
  }

  private commitContext(): CommitContext {
    return {
      ops: [],
      changes: new Map(),
      touched: new Set(),
      records: new Map(),
      scopes: new Map(),
      recordsUrgent: false,
      now: new Date(this.clock()).toISOString(),
      results: [],
    };
  }

  private async commit(ops: Op[]): Promise<void> {
    const ctx = this.commitContext();
    const maxRvBefore = this.globalMaxRv;
    const accepted: Op[] = [];
    for (const op of ops) {
      try {
        if (op.type === 'token') {
          this.put(ctx, op.key, encodeRecord(op.record));
          ctx.results.push(() => op.done.resolve());
        } else if (op.type === 'flush') {
          ctx.recordsUrgent = true;
          ctx.results.push(() => op.done.resolve());
        } else if (op.type !== 'staged') {
          const state = await this.stateOf(op.entry);
          this.applyOp(op, state, ctx);
        }
        accepted.push(op);
      } catch (err) {
        op.done.reject(err);
      }
    }
    await this.writeCommit(ctx, accepted, maxRvBefore, true);
  }

  /**
   * Applies a staged list (replaceStagedList): a synced intent, the items in
   * unsynced batches of stagedChunkBytes, then one synced batch that drops
   * what the list no longer holds, completes the scope and removes the
   * intent. Memory holds one batch of items, never the list.
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
        await this.writeBatch([
          { type: 'put', key: keys.listIntent(txid), value: encodeRecord(intent) },
        ]);
      }
      const listed = new Set<string>();
      for await (const items of readStaged(this.dataDir, txid, this.stagedChunkBytes)) {
        const ctx = this.commitContext();
        const maxRvBefore = this.globalMaxRv;
        entry.generation++;
        ctx.touched.add(entry);
        // Items are views of a buffer read into again: listeners may keep what they are given.
        const own = this.listeners.has(entry)
          ? items.map((item) => ({ ...item, raw: Buffer.from(item.raw) }))
          : items;
        this.applyListItems(entry, state, input.scope, own, listed, ctx);
        if (!(await this.writeCommit(ctx, [], maxRvBefore, false))) {
          failed(new Error('a batch of staged list items could not be written'), true);
          return;
        }
      }
      const ctx = this.commitContext();
      const maxRvBefore = this.globalMaxRv;
      entry.generation++;
      ctx.touched.add(entry);
      ctx.recordsUrgent = true;
      this.completeReplace(entry, state, { ...input, items: [] }, listed, ctx);
      this.del(ctx, keys.listIntent(txid));
      if (!(await this.writeCommit(ctx, [op], maxRvBefore, true))) {
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
   * Writes what a commit applied (one LevelDB batch, synced when `sync`) and
   * then settles its operations and tells listeners. False when the batch
   * failed: `accepted` are rejected and the touched resources reloaded.
   */
  private async writeCommit(
    ctx: CommitContext,
    accepted: readonly Op[],
    maxRvBefore: string,
    sync: boolean,
  ): Promise<boolean> {
    for (const [s, entry] of ctx.scopes)
      ctx.records.set(this.scopeKey(entry, s), this.scopeRecord(s));
    for (const entry of ctx.touched) {
      ctx.records.set(entry.prefix.record, this.resourceRecord(entry));
    }
    if (this.globalMaxRv !== maxRvBefore) {
      this.put(ctx, MAX_RV_KEY, Buffer.from(this.globalMaxRv));
    }
    if (ctx.ops.length === 0 && !ctx.recordsUrgent) {
      // Nothing but bookkeeping changed: no synced write for it now.
      for (const [key, value] of ctx.records) this.deferRecord(key, value);
      for (const result of ctx.results) result();
      return true;
    }
    for (const [key, value] of ctx.records) this.pendingRecords.set(key, value);
    for (const op of this.takePendingRecords()) ctx.ops.push(op);
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (ctx.ops.length === 0) {
      for (const result of ctx.results) result();
      return true;
    }
    const started = performance.now();
    try {
      await this.writeBatch(ctx.ops, sync);
    } catch (err) {
      this.overlay.clear();
      this.log.error(
        { err: String(err), operations: ctx.ops.length },
        'cache store batch failed; in-memory state of the touched resources is reloaded from disk',
      );
      for (const entry of ctx.touched) await this.reloadEntry(entry);
      this.globalMaxRv = maxRvBefore;
      for (const op of accepted) {
        op.done.reject(new Error(`cache store write failed: ${String(err)}`, { cause: err }));
      }
      return false;
    }
    this.overlay.clear();
    this.metrics?.observeCommit((performance.now() - started) / 1000, ctx.ops.length);
    for (const result of ctx.results) result();
    for (const [entry, changes] of ctx.changes) {
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

  /**
   * One atomic, synced LevelDB write. A chained batch hands each key and value
   * to LevelDB in one native call; an array batch costs the native side a
   * dozen property reads per operation, at a watch burst's thousands of
   * operations a second.
   */
  private async writeBatch(ops: readonly BatchOp[], sync = true): Promise<void> {
    const batch = this.db.batch();
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

  /** After a failed batch: forget memory that may be ahead of disk. */
  private async reloadEntry(entry: ResourceEntry): Promise<void> {
    entry.state = undefined;
    entry.scopes.clear();
    await this.scan(keys.scopes(entry.component, entry.ref), (key, value) => {
      const scope = this.decodeScope(entry.ref, key, value);
      if (scope !== undefined) entry.scopes.set(scope.scope.id, scope);
    });
  }

  private put(ctx: CommitContext, key: string, value: Buffer): void {
    ctx.ops.push({ type: 'put', key, value });
    this.overlay.set(key, value);
  }

  private del(ctx: CommitContext, key: string): void {
    ctx.ops.push({ type: 'del', key });
    this.overlay.set(key, null);
  }

  private applyOp(
    op: Exclude<Op, { type: 'token' | 'flush' | 'staged' }>,
    state: ResourceState,
    ctx: CommitContext,
  ) {
    const entry = op.entry;
    entry.generation++;
    ctx.touched.add(entry);
    switch (op.type) {
      case 'replace':
        this.applyReplace(entry, state, op.input, ctx);
        ctx.results.push(() => op.done.resolve());
        return;
      case 'events':
        this.applyEvents(entry, state, op.scope, op.events, op.kind, ctx);
        ctx.results.push(() => op.done.resolve());
        return;
      case 'upsert':
        if (op.kind !== null) entry.kind = op.kind;
        this.applyPut(entry, state, op.object, ctx, undefined, false);
        entry.lastSync = ctx.now;
        ctx.results.push(() => op.done.resolve());
        return;
      case 'delete':
        this.applyDelete(entry, state, op.id, '', undefined, ctx);
        entry.lastSync = ctx.now;
        ctx.results.push(() => op.done.resolve());
        return;
      case 'local': {
        const result = this.applyLocal(entry, state, op.id, op.mutate, ctx);
        ctx.results.push(() => op.done.resolve(result));
        return;
      }
    }
  }

  private scopeState(entry: ResourceEntry, scope: CompiledScope): ScopeState {
    let s = entry.scopes.get(scope.id);
    if (s === undefined) {
      s = { scope, rv: '', complete: false, syncedAt: null };
      entry.scopes.set(scope.id, s);
    }
    return s;
  }

  private saveScope(entry: ResourceEntry, s: ScopeState, ctx: CommitContext): void {
    ctx.scopes.set(s, entry);
  }

  private scopeKey(entry: ResourceEntry, s: ScopeState): string {
    s.recordKey ??= keys.scopes(entry.component, entry.ref) + encodeURIComponent(s.scope.id);
    return s.recordKey;
  }

  private scopeRecord(s: ScopeState): Buffer {
    const record: ScopeRecord = {
      namespace: s.scope.def.namespace,
      labelSelector: s.scope.def.labelSelector,
      fieldSelector: s.scope.def.fieldSelector,
      resourceVersion: s.rv,
      complete: s.complete,
      syncedAt: s.syncedAt,
    };
    return encodeRecord(record);
  }

  private noteRv(rv: string): void {
    if (compareResourceVersions(rv, rv) !== undefined) {
      this.globalMaxRv = maxResourceVersion(this.globalMaxRv, rv);
    }
  }

  private membersPrefix(entry: ResourceEntry, scopeId: string): string {
    let prefix = entry.prefix.members.get(scopeId);
    if (prefix === undefined) {
      prefix = keys.members(entry.component, entry.ref, scopeId);
      entry.prefix.members.set(scopeId, prefix);
    }
    return prefix;
  }

  private addMembership(
    entry: ResourceEntry,
    state: ResourceState,
    scopeId: string,
    id: string,
    ctx: CommitContext,
  ) {
    if (state.addMember(scopeId, id)) {
      this.put(ctx, this.membersPrefix(entry, scopeId) + id, EMPTY);
    }
  }

  private dropMembership(
    entry: ResourceEntry,
    state: ResourceState,
    scopeId: string,
    id: string,
    ctx: CommitContext,
  ) {
    if (state.removeMember(scopeId, id)) {
      this.del(ctx, this.membersPrefix(entry, scopeId) + id);
    }
  }

  /** Stores an object unless the cache already holds the same or a newer version. */
  private applyPut(
    entry: ResourceEntry,
    state: ResourceState,
    obj: PreparedObject,
    ctx: CommitContext,
    scopeId: string | undefined,
    local: boolean,
  ): void {
    const existing = state.meta.get(obj.id);
    const tombstone = state.tombstones.get(obj.id);
    if (
      !local &&
      existing === undefined &&
      tombstone !== undefined &&
      notNewerThan(obj.rv, tombstone.rv)
    ) {
      return; // a stale copy of an object already deleted: never resurrect it
    }
    if (scopeId !== undefined) this.addMembership(entry, state, scopeId, obj.id, ctx);
    if (existing !== undefined && !existing.local && !local && !supersedes(obj.rv, existing.rv)) {
      return;
    }
    const meta: ObjectMeta = {
      rv: obj.rv,
      frv: existing?.frv ?? obj.rv,
      labels: obj.labels,
      fields: obj.fields,
      local,
    };
    state.setMeta(obj.id, meta);
    this.put(ctx, entry.prefix.objects + obj.id, obj.raw);
    this.put(ctx, entry.prefix.metas + obj.id, encodeMeta(meta));
    if (tombstone !== undefined) {
      state.tombstones.delete(obj.id);
      this.del(ctx, entry.prefix.tombstones + obj.id);
    }
    if (existing === undefined) entry.objects++;
    this.noteRv(obj.rv);
    this.noteChange(entry, ctx, {
      type: existing === undefined ? 'ADDED' : 'MODIFIED',
      id: obj.id,
      namespace: obj.namespace,
      rv: obj.rv,
      raw: obj.raw,
      labels: obj.labels,
      fields: obj.fields,
    });
  }

  /**
   * Removes an object from every scope of the component. `rv` is the
   * resourceVersion at which upstream says it is gone ('' = unknown); a stored
   * copy newer than that is kept.
   */
  private applyDelete(
    entry: ResourceEntry,
    state: ResourceState,
    id: string,
    rv: string,
    finalRaw: Buffer | undefined,
    ctx: CommitContext,
  ): void {
    const existing = state.meta.get(id);
    if (existing !== undefined && rv !== '' && !existing.local) {
      const c = compareResourceVersions(existing.rv, rv);
      if (c !== undefined && c > 0) return;
    }
    if (rv !== '' && compareResourceVersions(rv, rv) !== undefined) {
      const old = state.tombstones.get(id);
      if (old === undefined || supersedes(rv, old.rv)) {
        const tombstone = { rv, labels: existing?.labels, fields: existing?.fields ?? old?.fields };
        state.tombstones.set(id, tombstone);
        state.maxRv = maxResourceVersion(state.maxRv, rv);
        this.put(
          ctx,
          keys.tombstones(entry.component, entry.ref) + id,
          encodeRecord({ ...tombstone, deletedAt: ctx.now }),
        );
        if (state.tombstones.size > TOMBSTONE_LIMIT * 1.1) this.pruneTombstones(entry, state, ctx);
      }
      this.noteRv(rv);
    }
    if (existing === undefined) return;
    state.removeMeta(id);
    for (const scopeId of state.coveringScopes(id))
      this.dropMembership(entry, state, scopeId, id, ctx);
    this.del(ctx, entry.prefix.objects + id);
    this.del(ctx, entry.prefix.metas + id);
    entry.objects = Math.max(0, entry.objects - 1);
    const { namespace, name } = splitObjectId(id);
    this.noteChange(entry, ctx, {
      type: 'DELETED',
      id,
      namespace,
      rv: rv === '' ? existing.rv : rv,
      raw: finalRaw ?? this.minimalObject(entry, namespace, name, rv === '' ? existing.rv : rv),
      labels: existing.labels,
      fields: existing.fields,
    });
  }

  /** The smallest object a DELETED event can carry: identity and resourceVersion. */
  minimalObject(entry: ResourceEntry, namespace: string, name: string, rv: string): Buffer {
    const metadata: Record<string, string> = { name, resourceVersion: rv };
    if (namespace !== '') metadata.namespace = namespace;
    return Buffer.from(
      JSON.stringify({
        kind: entry.kind ?? undefined,
        apiVersion: apiVersionOf(entry.ref),
        metadata,
      }),
    );
  }

  private pruneTombstones(entry: ResourceEntry, state: ResourceState, ctx: CommitContext): void {
    const sorted = [...state.tombstones].sort(
      (a, b) => compareResourceVersions(a[1].rv, b[1].rv) ?? 0,
    );
    for (const [id] of sorted.slice(0, sorted.length - TOMBSTONE_LIMIT)) {
      state.tombstones.delete(id);
      this.del(ctx, keys.tombstones(entry.component, entry.ref) + id);
    }
  }

  private noteChange(entry: ResourceEntry, ctx: CommitContext, change: StoreChange): void {
    if (!this.listeners.has(entry)) return;
    let list = ctx.changes.get(entry);
    if (list === undefined) {
      list = [];
      ctx.changes.set(entry, list);
    }
    list.push(change);
  }

  private applyReplace(
    entry: ResourceEntry,
    state: ResourceState,
    input: ListReplacement,
    ctx: CommitContext,
  ): void {
    const listed = new Set<string>();
    this.applyListItems(entry, state, input.scope, input.items, listed, ctx);
    this.completeReplace(entry, state, input, listed, ctx);
  }

  /** Stores a list's items as members of its scope; `listed` collects their ids. */
  private applyListItems(
    entry: ResourceEntry,
    state: ResourceState,
    scope: CompiledScope,
    items: readonly PreparedObject[],
    listed: Set<string>,
    ctx: CommitContext,
  ): void {
    for (const item of items) {
      listed.add(item.id);
      this.applyPut(entry, state, item, ctx, scope.id, false);
    }
  }

  /** The end of a list replacement: what the scope no longer lists goes, the scope is complete. */
  private completeReplace(
    entry: ResourceEntry,
    state: ResourceState,
    input: ListReplacement,
    listed: ReadonlySet<string>,
    ctx: CommitContext,
  ): void {
    const s = this.scopeState(entry, input.scope);
    // The cache now knows the scope whole: that must be on disk with this batch.
    if (!s.complete) ctx.recordsUrgent = true;
    if (input.kind !== null) entry.kind = input.kind;
    // What the scope covered before: its members, and anything cached that matches it.
    const candidates = new Set(state.members.get(s.scope.id) ?? []);
    for (const id of this.matchingIds(state, input.scope)) candidates.add(id);
    for (const id of candidates) {
      if (listed.has(id)) continue;
      this.dropMembership(entry, state, s.scope.id, id, ctx);
      // Absent from an unfiltered list means deleted; absent from a filtered one may only mean
      // "no longer matches", so another scope that delivered it keeps it.
      if (input.scope.unfiltered || state.coveringScopes(id).length === 0) {
        this.applyDelete(entry, state, id, input.rv, undefined, ctx);
      }
    }
    s.rv = input.rv;
    s.complete = true;
    s.syncedAt = ctx.now;
    s.lastList =
      input.fingerprint === undefined
        ? undefined
        : { fingerprint: input.fingerprint, generation: entry.generation };
    entry.lastSync = ctx.now;
    this.noteRv(input.rv);
    this.saveScope(entry, s, ctx);
  }

  /** Ids of cached objects that fall in a scope, using an index when the scope pins one. */
  matchingIds(state: ResourceState, scope: CompiledScope): string[] {
    let candidates: Iterable<string> = state.meta.keys();
    for (const r of scope.fields.requirements) {
      if (r.operator === '!=') continue;
      const hit = state.lookup(r.field, r.value);
      if (hit !== undefined) {
        candidates = hit;
        break;
      }
    }
    const out: string[] = [];
    for (const id of candidates) {
      const meta = state.meta.get(id);
      if (meta === undefined) continue;
      if (scope.def.namespace !== '' && !id.startsWith(namespacePrefix(scope.def.namespace)))
        continue;
      const { namespace } = splitObjectId(id);
      if (scopeMatches(scope, namespace, meta.labels, meta.fields)) out.push(id);
    }
    return out;
  }

  private applyEvents(
    entry: ResourceEntry,
    state: ResourceState,
    scope: CompiledScope,
    events: readonly WatchEventInput[],
    kind: string | null,
    ctx: CommitContext,
  ): void {
    const s = this.scopeState(entry, scope);
    if (kind !== null) entry.kind = kind;
    for (const ev of events) {
      if (ev.object !== undefined && (ev.type === 'ADDED' || ev.type === 'MODIFIED')) {
        this.applyPut(entry, state, ev.object, ctx, s.scope.id, false);
      } else if (ev.object !== undefined && ev.type === 'DELETED') {
        // In a filtered watch DELETED also means "no longer matches": other scopes keep it.
        this.dropMembership(entry, state, s.scope.id, ev.object.id, ctx);
        if (scope.unfiltered || state.coveringScopes(ev.object.id).length === 0) {
          this.applyDelete(entry, state, ev.object.id, ev.rv, ev.object.raw, ctx);
        }
      }
      if (ev.rv !== '') {
        s.rv = s.rv === '' ? ev.rv : maxResourceVersion(s.rv, ev.rv);
        this.noteRv(ev.rv);
      }
    }
    entry.lastSync = ctx.now;
    this.saveScope(entry, s, ctx);
  }

  private applyLocal(
    entry: ResourceEntry,
    state: ResourceState,
    id: string,
    mutate: LocalMutation,
    ctx: CommitContext,
  ): LocalWriteResult {
    const current = state.meta.has(id)
      ? this.readObject(entry.component, entry.ref, id)
      : undefined;
    const newRv = nextResourceVersion(this.globalMaxRv === '' ? '0' : this.globalMaxRv);
    const outcome = mutate(current, newRv);
    if ('refusal' in outcome) return outcome;
    const prepared = prepareObject(entry.ref, outcome.object, {
      kind: entry.kind ?? undefined,
      apiVersion: apiVersionOf(entry.ref),
    });
    if (prepared instanceof Error) {
      throw new Error(
        `local write of ${qualifiedResource(entry.ref)} ${id} built an invalid object: ${prepared.message}`,
      );
    }
    this.applyPut(entry, state, prepared, ctx, undefined, true);
    this.globalMaxRv = newRv;
    entry.lastSync = ctx.now;
    return { raw: prepared.raw, created: current === undefined };
  }

  /** Waits for queued writes, then closes LevelDB. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.draining !== undefined) await this.draining;
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.pendingRecords.size > 0) {
      const ops = this.takePendingRecords();
      try {
        await this.writeBatch(ops);
      } catch (err) {
        this.log.warn({ err: String(err) }, 'syncing cache bookkeeping records at close failed');
      }
    }
    await this.db.close();
  }
}
