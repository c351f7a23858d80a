import { keys, type ResourceRef } from './keys.ts';
import type { ListFingerprint } from './list-fingerprint.ts';
import { encodeRecord, type ObjectMeta, type ScopeRecord } from './store-records.ts';
import type { CompiledScope } from './scope.ts';
import { maxResourceVersion } from './resource-version.ts';

/** Fields kubelet and kube-proxy pin with `=`: lists by them use an index, not a scan. */
export const INDEXED_FIELDS = ['spec.nodeName', 'metadata.name'] as const;

export interface Tombstone {
  rv: string;
  labels: Record<string, string> | undefined;
  fields: Record<string, string> | undefined;
}

export interface ScopeState {
  scope: CompiledScope;
  rv: string;
  complete: boolean;
  syncedAt: string | null;
  /** The last one-page LIST recorded for it, and the resource's generation just after. */
  lastList?: { fingerprint: ListFingerprint; generation: number };
  /** Its record's key, built at first use: a LIST answered again moves syncedAt only. */
  recordKey?: string;
}

/**
 * Everything the cache holds in memory for one component's resource, built
 * lazily from the meta/member/tombstone records the first time the resource
 * is written or needs more than a point read (LevelDB stays the truth).
 */
export class ResourceState {
  readonly meta = new Map<string, ObjectMeta>();
  /** scope id -> object ids the scope's LIST/WATCH delivered */
  readonly members = new Map<string, Set<string>>();
  /** object id -> the deletion (for stale-write refusal and DELETED replay to resumed watches) */
  readonly tombstones = new Map<string, Tombstone>();
  private readonly indexes = new Map<string, Map<string, Set<string>>>();
  private sortedIds: string[] | undefined;
  /** highest resourceVersion among stored objects and deletions */
  maxRv = '';

  constructor() {
    for (const field of INDEXED_FIELDS) this.indexes.set(field, new Map());
  }

  setMeta(id: string, meta: ObjectMeta): void {
    const old = this.meta.get(id);
    if (old !== undefined) this.unindex(id, old);
    else this.sortedIds = undefined;
    this.meta.set(id, meta);
    this.index(id, meta);
    this.maxRv = maxResourceVersion(this.maxRv, meta.rv);
  }

  removeMeta(id: string): ObjectMeta | undefined {
    const old = this.meta.get(id);
    if (old === undefined) return undefined;
    this.unindex(id, old);
    this.meta.delete(id);
    this.sortedIds = undefined;
    return old;
  }

  addMember(scopeId: string, id: string): boolean {
    let set = this.members.get(scopeId);
    if (set === undefined) {
      set = new Set();
      this.members.set(scopeId, set);
    }
    if (set.has(id)) return false;
    set.add(id);
    return true;
  }

  removeMember(scopeId: string, id: string): boolean {
    return this.members.get(scopeId)?.delete(id) ?? false;
  }

  /** Scope ids (other than `except`) whose member set holds the object. */
  coveringScopes(id: string, except?: string): string[] {
    const out: string[] = [];
    for (const [scopeId, set] of this.members)
      if (scopeId !== except && set.has(id)) out.push(scopeId);
    return out;
  }

  /** Candidate ids for an exact field value, or undefined when the field is not indexed. */
  lookup(field: string, value: string): ReadonlySet<string> | undefined {
    const index = this.indexes.get(field);
    if (index === undefined) return undefined;
    return index.get(value) ?? new Set();
  }

  /** Every object id in etcd key order (namespace, then name). */
  allIdsSorted(): readonly string[] {
    if (this.sortedIds === undefined) this.sortedIds = [...this.meta.keys()].sort();
    return this.sortedIds;
  }

  private index(id: string, meta: ObjectMeta): void {
    for (const [field, index] of this.indexes) {
      const value = meta.fields[field];
      if (value === undefined) continue;
      let set = index.get(value);
      if (set === undefined) {
        set = new Set();
        index.set(value, set);
      }
      set.add(id);
    }
  }

  private unindex(id: string, meta: ObjectMeta): void {
    for (const [field, index] of this.indexes) {
      const value = meta.fields[field];
      if (value === undefined) continue;
      const set = index.get(value);
      set?.delete(id);
      if (set?.size === 0) index.delete(value);
    }
  }
}

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
  /** Settles when the last operation queued for this entry has (never rejects). */
  settled: Promise<void>;
  /** Counts operations applied to this entry: a list digest is only good until the next one. */
  generation: number;
  /** This entry's key prefixes (keys.ts), built once: every written object needs several. */
  readonly prefix: EntryPrefixes;
}

export interface EntryPrefixes {
  readonly objects: string;
  readonly metas: string;
  readonly tombstones: string;
  /** The `r/` record's key: bookkeeping moves on every recognised answer. */
  readonly record: string;
  /** scope id -> members prefix */
  readonly members: Map<string, string>;
}

/** A resource nothing is known of yet: no scopes, its state not loaded. */
export function createEntry(component: string, ref: ResourceRef): ResourceEntry {
  return {
    component,
    ref: { group: ref.group, version: ref.version, resource: ref.resource },
    kind: null,
    objects: 0,
    lastSync: null,
    scopes: new Map(),
    state: undefined,
    loading: undefined,
    queued: 0,
    settled: Promise.resolve(),
    generation: 0,
    prefix: {
      objects: keys.objects(component, ref),
      metas: keys.metas(component, ref),
      tombstones: keys.tombstones(component, ref),
      record: keys.resourceRecord(component, ref),
      members: new Map(),
    },
  };
}

/** The key of a scope's `s/` record. */
export function scopeKeyOf(entry: ResourceEntry, s: ScopeState): string {
  s.recordKey ??= keys.scopes(entry.component, entry.ref) + encodeURIComponent(s.scope.id);
  return s.recordKey;
}

/** The prefix of a scope's `m/` member keys. */
export function membersPrefixOf(entry: ResourceEntry, scopeId: string): string {
  let prefix = entry.prefix.members.get(scopeId);
  if (prefix === undefined) {
    prefix = keys.members(entry.component, entry.ref, scopeId);
    entry.prefix.members.set(scopeId, prefix);
  }
  return prefix;
}

export function encodeScopeRecord(s: ScopeState): Buffer {
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

export function encodeResourceRecord(entry: ResourceEntry): Buffer {
  return encodeRecord({ kind: entry.kind, objects: entry.objects, lastSync: entry.lastSync });
}
