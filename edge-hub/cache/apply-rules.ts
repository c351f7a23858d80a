import { qualifiedResource, type KubeStatus } from '../../src/kube/status.ts';
import { apiVersionOf, namespacePrefix, splitObjectId } from './keys.ts';
import type { ListFingerprint } from './list-fingerprint.ts';
import { prepareObject, type PreparedObject } from './prepared-object.ts';
import {
  encodeResourceRecord,
  encodeScopeRecord,
  membersPrefixOf,
  scopeKeyOf,
  type ResourceEntry,
  type ResourceState,
  type ScopeState,
} from './resource-state.ts';
import {
  compareResourceVersions,
  maxResourceVersion,
  nextResourceVersion,
  notNewerThan,
  supersedes,
} from './resource-version.ts';
import { scopeMatches, type CompiledScope } from './scope.ts';
import { encodeMeta, encodeRecord, type ObjectMeta } from './store-records.ts';

/**
 * How each answer changes the cache (README "Rules the store keeps"): which
 * copy wins, when a deletion leaves a tombstone, what a LIST does to its
 * scope's members. No I/O: a rule changes the in-memory state of one
 * resource and writes the keys that state maps to into a StoreCommit, which
 * the store then syncs as one LevelDB batch (cache-store.ts).
 */

/** Deletions remembered per resource; the oldest are forgotten beyond this. */
export const TOMBSTONE_LIMIT = 5000;

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

export interface ListReplacement {
  scope: CompiledScope;
  rv: string;
  items: readonly PreparedObject[];
  kind: string | null;
  /** Recognises this answer again when it came in one page (see noteUnchangedList). */
  fingerprint?: ListFingerprint;
}

/** A LIST without its items (applied already, or staged): what completes its scope. */
export type ListCompletion = Omit<ListReplacement, 'items'>;

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

export type BatchOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string };

const EMPTY = Buffer.alloc(0);

/** What one group commit accumulates while its operations are applied. */
export class StoreCommit {
  readonly ops: BatchOp[] = [];
  readonly changes = new Map<ResourceEntry, StoreChange[]>();
  readonly touched = new Set<ResourceEntry>();
  /** Scopes changed by this commit, encoded once at its end (a watch burst touches one many times). */
  readonly scopes = new Map<ScopeState, ResourceEntry>();
  /** A record change that must be synced now (a scope became complete; a flush). */
  recordsUrgent = false;
  /** The highest decimal resourceVersion seen anywhere, this commit's included. */
  maxRv: string;
  readonly now: string;
  /** Every key this commit wrote, as it will read once synced (null: deleted). */
  private readonly written: Map<string, Buffer | null>;
  /** Whether anyone follows this resource's changes (only then are they collected). */
  private readonly watched: (entry: ResourceEntry) => boolean;

  constructor(opts: {
    now: string;
    maxRv: string;
    written?: Map<string, Buffer | null>;
    watched?: (entry: ResourceEntry) => boolean;
  }) {
    this.now = opts.now;
    this.maxRv = opts.maxRv;
    this.written = opts.written ?? new Map();
    this.watched = opts.watched ?? (() => true);
  }

  put(key: string, value: Buffer): void {
    this.ops.push({ type: 'put', key, value });
    this.written.set(key, value);
  }

  del(key: string): void {
    this.ops.push({ type: 'del', key });
    this.written.set(key, null);
  }

  noteRv(rv: string): void {
    if (compareResourceVersions(rv, rv) !== undefined) {
      this.maxRv = maxResourceVersion(this.maxRv, rv);
    }
  }

  noteChange(entry: ResourceEntry, change: StoreChange): void {
    if (!this.watched(entry)) return;
    let list = this.changes.get(entry);
    if (list === undefined) {
      list = [];
      this.changes.set(entry, list);
    }
    list.push(change);
  }

  /** The scope and resource records this commit changed, encoded as they stand now. */
  records(): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    for (const [s, entry] of this.scopes) out.set(scopeKeyOf(entry, s), encodeScopeRecord(s));
    for (const entry of this.touched) out.set(entry.prefix.record, encodeResourceRecord(entry));
    return out;
  }
}

/** Every rule starts so: the resource changes, and so does its generation. */
function touch(entry: ResourceEntry, commit: StoreCommit): void {
  entry.generation++;
  commit.touched.add(entry);
}

/** A GET answer: the object is stored unless the cache holds the same or a newer version. */
export function applyGet(
  entry: ResourceEntry,
  state: ResourceState,
  object: PreparedObject,
  kind: string | null,
  commit: StoreCommit,
): void {
  touch(entry, commit);
  if (kind !== null) entry.kind = kind;
  putObject(entry, state, object, commit, undefined, false);
  entry.lastSync = commit.now;
}

/** A 404 for a GET: the object is gone from this component's cache. */
export function applyNotFound(
  entry: ResourceEntry,
  state: ResourceState,
  id: string,
  commit: StoreCommit,
): void {
  touch(entry, commit);
  deleteObject(entry, state, id, '', undefined, commit);
  entry.lastSync = commit.now;
}

/**
 * A complete LIST of a scope: its items become exactly the scope's members.
 * What the scope covered before and is not listed loses the scope, and is
 * deleted unless another scope still delivered it (an unfiltered list is
 * authoritative and deletes regardless).
 */
export function applyList(
  entry: ResourceEntry,
  state: ResourceState,
  input: ListReplacement,
  commit: StoreCommit,
): void {
  const listed = new Set<string>();
  applyListItems(entry, state, input.scope, input.items, listed, commit);
  completeList(entry, state, input, listed, commit);
}

/**
 * Some of a LIST's items (all of them, or one staged batch): each is stored
 * as applyGet would and claimed by the scope; `listed` collects their ids for
 * completeList. Nothing is dropped and the scope's state is unchanged until then.
 */
export function applyListItems(
  entry: ResourceEntry,
  state: ResourceState,
  scope: CompiledScope,
  items: readonly PreparedObject[],
  listed: Set<string>,
  commit: StoreCommit,
): void {
  touch(entry, commit);
  for (const item of items) {
    listed.add(item.id);
    putObject(entry, state, item, commit, scope.id, false);
  }
}

/**
 * The end of a LIST whose items (`listed`) are applied: what the scope
 * covered and the list no longer holds goes, and the scope is complete at
 * the list's resourceVersion.
 */
export function completeList(
  entry: ResourceEntry,
  state: ResourceState,
  input: ListCompletion,
  listed: ReadonlySet<string>,
  commit: StoreCommit,
): void {
  touch(entry, commit);
  const s = scopeState(entry, input.scope);
  // The cache now knows the scope whole: that must be on disk with this batch.
  if (!s.complete) commit.recordsUrgent = true;
  if (input.kind !== null) entry.kind = input.kind;
  // What the scope covered before: its members, and anything cached that matches it.
  const candidates = new Set(state.members.get(s.scope.id) ?? []);
  for (const id of matchingIds(state, input.scope)) candidates.add(id);
  for (const id of candidates) {
    if (listed.has(id)) continue;
    dropMembership(entry, state, s.scope.id, id, commit);
    // Absent from an unfiltered list means deleted; absent from a filtered one may only mean
    // "no longer matches", so another scope that delivered it keeps it.
    if (input.scope.unfiltered || state.coveringScopes(id).length === 0) {
      deleteObject(entry, state, id, input.rv, undefined, commit);
    }
  }
  s.rv = input.rv;
  s.complete = true;
  s.syncedAt = commit.now;
  s.lastList =
    input.fingerprint === undefined
      ? undefined
      : { fingerprint: input.fingerprint, generation: entry.generation };
  entry.lastSync = commit.now;
  commit.noteRv(input.rv);
  commit.scopes.set(s, entry);
}

/**
 * Watch events of a scope, in order. DELETED drops the scope's claim (in a
 * filtered watch it may mean "no longer matches"); any event with a
 * resourceVersion (BOOKMARK included) moves the scope's version on. A scope
 * never listed stays incomplete.
 */
export function applyWatchEvents(
  entry: ResourceEntry,
  state: ResourceState,
  scope: CompiledScope,
  events: readonly WatchEventInput[],
  kind: string | null,
  commit: StoreCommit,
): void {
  touch(entry, commit);
  const s = scopeState(entry, scope);
  if (kind !== null) entry.kind = kind;
  for (const ev of events) {
    if (ev.object !== undefined && (ev.type === 'ADDED' || ev.type === 'MODIFIED')) {
      putObject(entry, state, ev.object, commit, s.scope.id, false);
    } else if (ev.object !== undefined && ev.type === 'DELETED') {
      // In a filtered watch DELETED also means "no longer matches": other scopes keep it.
      dropMembership(entry, state, s.scope.id, ev.object.id, commit);
      if (scope.unfiltered || state.coveringScopes(ev.object.id).length === 0) {
        deleteObject(entry, state, ev.object.id, ev.rv, ev.object.raw, commit);
      }
    }
    if (ev.rv !== '') {
      s.rv = s.rv === '' ? ev.rv : maxResourceVersion(s.rv, ev.rv);
      commit.noteRv(ev.rv);
    }
  }
  entry.lastSync = commit.now;
  commit.scopes.set(s, entry);
}

/**
 * A write acknowledged offline: `mutate` builds the new object from the
 * stored one (`current`), which gets a resourceVersion above everything the
 * store has seen and loses to any later upstream copy.
 */
export function applyLocalWrite(
  entry: ResourceEntry,
  state: ResourceState,
  id: string,
  current: Buffer | undefined,
  mutate: LocalMutation,
  commit: StoreCommit,
): LocalWriteResult {
  touch(entry, commit);
  const newRv = nextResourceVersion(commit.maxRv === '' ? '0' : commit.maxRv);
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
  putObject(entry, state, prepared, commit, undefined, true);
  commit.maxRv = newRv;
  entry.lastSync = commit.now;
  return { raw: prepared.raw, created: current === undefined };
}

/** The smallest object a DELETED event can carry: identity and resourceVersion. */
export function minimalObject(
  entry: ResourceEntry,
  namespace: string,
  name: string,
  rv: string,
): Buffer {
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

/** Ids of cached objects that fall in a scope, using an index when the scope pins one. */
export function matchingIds(state: ResourceState, scope: CompiledScope): string[] {
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

function scopeState(entry: ResourceEntry, scope: CompiledScope): ScopeState {
  let s = entry.scopes.get(scope.id);
  if (s === undefined) {
    s = { scope, rv: '', complete: false, syncedAt: null };
    entry.scopes.set(scope.id, s);
  }
  return s;
}

function addMembership(
  entry: ResourceEntry,
  state: ResourceState,
  scopeId: string,
  id: string,
  commit: StoreCommit,
): void {
  if (state.addMember(scopeId, id)) commit.put(membersPrefixOf(entry, scopeId) + id, EMPTY);
}

function dropMembership(
  entry: ResourceEntry,
  state: ResourceState,
  scopeId: string,
  id: string,
  commit: StoreCommit,
): void {
  if (state.removeMember(scopeId, id)) commit.del(membersPrefixOf(entry, scopeId) + id);
}

/** Stores an object unless the cache already holds the same or a newer version. */
function putObject(
  entry: ResourceEntry,
  state: ResourceState,
  obj: PreparedObject,
  commit: StoreCommit,
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
  if (scopeId !== undefined) addMembership(entry, state, scopeId, obj.id, commit);
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
  commit.put(entry.prefix.objects + obj.id, obj.raw);
  commit.put(entry.prefix.metas + obj.id, encodeMeta(meta));
  if (tombstone !== undefined) {
    state.tombstones.delete(obj.id);
    commit.del(entry.prefix.tombstones + obj.id);
  }
  if (existing === undefined) entry.objects++;
  commit.noteRv(obj.rv);
  commit.noteChange(entry, {
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
function deleteObject(
  entry: ResourceEntry,
  state: ResourceState,
  id: string,
  rv: string,
  finalRaw: Buffer | undefined,
  commit: StoreCommit,
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
      commit.put(
        entry.prefix.tombstones + id,
        encodeRecord({ ...tombstone, deletedAt: commit.now }),
      );
      if (state.tombstones.size > TOMBSTONE_LIMIT * 1.1) pruneTombstones(entry, state, commit);
    }
    commit.noteRv(rv);
  }
  if (existing === undefined) return;
  state.removeMeta(id);
  for (const scopeId of state.coveringScopes(id)) dropMembership(entry, state, scopeId, id, commit);
  commit.del(entry.prefix.objects + id);
  commit.del(entry.prefix.metas + id);
  entry.objects = Math.max(0, entry.objects - 1);
  const { namespace, name } = splitObjectId(id);
  const goneAt = rv === '' ? existing.rv : rv;
  commit.noteChange(entry, {
    type: 'DELETED',
    id,
    namespace,
    rv: goneAt,
    raw: finalRaw ?? minimalObject(entry, namespace, name, goneAt),
    labels: existing.labels,
    fields: existing.fields,
  });
}

function pruneTombstones(entry: ResourceEntry, state: ResourceState, commit: StoreCommit): void {
  const sorted = [...state.tombstones].sort(
    (a, b) => compareResourceVersions(a[1].rv, b[1].rv) ?? 0,
  );
  for (const [id] of sorted.slice(0, sorted.length - TOMBSTONE_LIMIT)) {
    state.tombstones.delete(id);
    commit.del(entry.prefix.tombstones + id);
  }
}
