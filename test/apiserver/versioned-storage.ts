import { VersionWaiters } from '../../src/kube/version-waiters.ts';
import type { ResourceType } from './resource-types.ts';

/**
 * The double's etcd: objects per resource, one global resourceVersion that
 * every write increments, and a bounded history of events from which both
 * watches (events after RV X) and consistent snapshots (state at RV X) are
 * served. Each object is kept serialized, so lists of thousands of objects
 * are written by joining strings rather than re-encoding objects.
 */

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoredObject {
  /** `namespace/name` or `name`: sorts as etcd keys do. */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly rv: number;
  /** The object as the apiserver would encode it, resourceVersion included. */
  readonly json: string;
  readonly labels: Readonly<Record<string, string>> | undefined;
  /** Field-selector values (selectors.ts fieldsOf). */
  readonly fields: Readonly<Record<string, string>>;
}

export interface StorageEvent {
  readonly type: WatchEventType;
  readonly rv: number;
  readonly resource: ResourceType;
  /** For DELETED: the last state, carrying the deletion's resourceVersion. */
  readonly object: StoredObject;
  /** The state before the event (undefined for ADDED). */
  readonly previous: StoredObject | undefined;
}

export type StorageListener = (event: StorageEvent) => void;

/** The state of one resource at one resourceVersion, keys in etcd order. */
export interface Snapshot {
  readonly rv: number;
  readonly keys: readonly string[];
  get(key: string): StoredObject | undefined;
}

interface Collection {
  readonly objects: Map<string, StoredObject>;
  sortedKeys: string[] | undefined;
}

export class ResourceVersionTooOldError extends Error {
  readonly requested: number;
  readonly oldest: number;
  constructor(requested: number, oldest: number) {
    super(`resourceVersion ${requested} is older than the retained history (oldest ${oldest})`);
    this.name = 'ResourceVersionTooOldError';
    this.requested = requested;
    this.oldest = oldest;
  }
}

export interface VersionedStorageOptions {
  /** How many events are retained for watches and snapshots (etcd compaction, watch cache size). */
  historyLimit: number;
  /** The first resourceVersion; real clusters never start at 1. */
  initialResourceVersion?: number;
}

export class VersionedStorage {
  readonly #collections = new Map<ResourceType, Collection>();
  readonly #listeners = new Map<ResourceType, Set<StorageListener>>();
  readonly #rvWaiters = new VersionWaiters<number>();
  readonly #historyLimit: number;
  #history: StorageEvent[] = [];
  #historyStart = 0;
  #rv: number;
  #compactedRV: number;

  constructor(options: VersionedStorageOptions) {
    if (!Number.isInteger(options.historyLimit) || options.historyLimit < 1) {
      throw new Error(`historyLimit must be a positive integer, got ${options.historyLimit}`);
    }
    this.#historyLimit = options.historyLimit;
    this.#rv = options.initialResourceVersion ?? 100;
    this.#compactedRV = this.#rv;
  }

  /** The newest resourceVersion (the last write's). */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** The oldest resourceVersion a watch may start from or a snapshot be taken at. */
  get compactedResourceVersion(): number {
    return this.#compactedRV;
  }

  get(type: ResourceType, key: string): StoredObject | undefined {
    return this.#collection(type).objects.get(key);
  }

  count(type: ResourceType): number {
    return this.#collection(type).objects.size;
  }

  /**
   * Applies one write and returns its event. `build` receives the new
   * resourceVersion and returns the object to store (serialized with it).
   */
  commit(
    type: ResourceType,
    eventType: WatchEventType,
    key: string,
    build: (rv: number) => StoredObject,
  ): StorageEvent {
    const collection = this.#collection(type);
    const previous = collection.objects.get(key);
    if (eventType === 'ADDED' && previous !== undefined) {
      throw new Error(`storage: ${type.qualifiedName} ${key} already exists`);
    }
    if (eventType !== 'ADDED' && previous === undefined) {
      throw new Error(`storage: ${type.qualifiedName} ${key} does not exist`);
    }
    const rv = this.#rv + 1;
    const object = build(rv);
    this.#rv = rv;
    if (eventType === 'DELETED') {
      collection.objects.delete(key);
      collection.sortedKeys = undefined;
    } else {
      collection.objects.set(key, object);
      if (previous === undefined) collection.sortedKeys = undefined;
    }
    const event: StorageEvent = { type: eventType, rv, resource: type, object, previous };
    this.#record(event);
    for (const listener of this.#listeners.get(type) ?? []) listener(event);
    this.#rvWaiters.reached(rv);
    return event;
  }

  /** Forgets all history: every resourceVersion before now becomes too old. */
  compact(): void {
    this.#history = [];
    this.#historyStart = 0;
    this.#compactedRV = this.#rv;
  }

  subscribe(type: ResourceType, listener: StorageListener): () => void {
    let set = this.#listeners.get(type);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Events of `type` after `rv`, oldest first; throws when `rv` is older than the history. */
  eventsSince(type: ResourceType, rv: number): StorageEvent[] {
    if (rv < this.#compactedRV) throw new ResourceVersionTooOldError(rv, this.#compactedRV);
    const out: StorageEvent[] = [];
    for (let i = this.#firstIndexAfter(rv); i < this.#history.length; i++) {
      const event = this.#history[i];
      if (event !== undefined && event.resource === type) out.push(event);
    }
    return out;
  }

  /** The state of `type` at `rv` (now when omitted); throws when `rv` is older than the history. */
  snapshot(type: ResourceType, rv?: number): Snapshot {
    const collection = this.#collection(type);
    const current = this.#rv;
    if (rv === undefined || rv >= current) {
      const objects = collection.objects;
      return { rv: current, keys: this.#sortedKeys(collection), get: (k) => objects.get(k) };
    }
    const undo = this.eventsSince(type, rv);
    if (undo.length === 0) {
      const objects = collection.objects;
      return { rv, keys: this.#sortedKeys(collection), get: (k) => objects.get(k) };
    }
    const objects = new Map(collection.objects);
    for (let i = undo.length - 1; i >= 0; i--) {
      const event = undo[i];
      if (event === undefined) continue;
      if (event.previous === undefined) objects.delete(event.object.key);
      else objects.set(event.previous.key, event.previous);
    }
    const keys = [...objects.keys()].sort(compareKeys);
    return { rv, keys, get: (k) => objects.get(k) };
  }

  /** Resolves true once the storage has reached `rv`, false after `timeoutMs`. */
  waitForResourceVersion(rv: number, timeoutMs: number): Promise<boolean> {
    return this.#rvWaiters.wait(rv, this.#rv, timeoutMs);
  }

  #collection(type: ResourceType): Collection {
    let c = this.#collections.get(type);
    if (c === undefined) {
      c = { objects: new Map(), sortedKeys: undefined };
      this.#collections.set(type, c);
    }
    return c;
  }

  #sortedKeys(c: Collection): string[] {
    if (c.sortedKeys === undefined) c.sortedKeys = [...c.objects.keys()].sort(compareKeys);
    return c.sortedKeys;
  }

  #record(event: StorageEvent): void {
    this.#history.push(event);
    while (this.#history.length - this.#historyStart > this.#historyLimit) {
      const dropped = this.#history[this.#historyStart];
      this.#historyStart++;
      if (dropped !== undefined) this.#compactedRV = dropped.rv;
    }
    // Reclaim the dropped prefix now and then rather than shifting on every write.
    if (this.#historyStart > this.#historyLimit) {
      this.#history = this.#history.slice(this.#historyStart);
      this.#historyStart = 0;
    }
  }

  #firstIndexAfter(rv: number): number {
    let lo = this.#historyStart;
    let hi = this.#history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const event = this.#history[mid];
      if (event !== undefined && event.rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Byte order, as etcd sorts keys (names are ASCII, so code units suffice). */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of the first key >= `key` in sorted `keys`. */
export function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const k = keys[mid];
    if (k !== undefined && k < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
