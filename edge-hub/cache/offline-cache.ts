import { fieldsOf, type SelectorError } from '../../src/kube/selectors.ts';
import type { HubRequest } from '../hub-request.ts';
import type { LocalMutation, LocalWriteResult } from './apply-rules.ts';
import {
  coveringScope,
  objectKnowledge,
  uncovered,
  type ObjectKnowledge,
  type Uncovered,
} from './cache-knowledge.ts';
import type { CacheStore } from './cache-store.ts';
import { builtinKind, guessKind } from './kinds.ts';
import {
  apiVersionOf,
  namespacePrefix,
  objectId,
  resourceRefOf,
  splitObjectId,
  type ResourceRef,
} from './keys.ts';
import type { ResourceEntry, ScopeState } from './resource-state.ts';
import { compileScope, scopeMatches, type CompiledScope } from './scope.ts';
import type { CacheLoss, TokenRecord } from './store-records.ts';
import { tokenStoreKey } from './token-key.ts';
import { WatchFeed } from './watch-feed.ts';

// The types local/ reads answers by: the seam hands them out, so local/ imports nothing else of cache/.
export type { Coverage, ObjectKnowledge, Uncovered } from './cache-knowledge.ts';
export type { CacheLoss, TokenRecord } from './store-records.ts';
export type { LocalMutation, LocalWriteResult } from './apply-rules.ts';
export type { FeedEvent, WatchFeed } from './watch-feed.ts';

/** A list or watch as the offline side asks it: whose cache, which resource, which scope. */
export interface OfflineQuery {
  readonly component: string;
  readonly resource: ResourceRef;
  readonly namespace: string;
  readonly labelSelector: string;
  readonly fieldSelector: string;
}

/** The resource a request names. */
export function resourceOf(req: HubRequest): ResourceRef {
  return resourceRefOf(req.info);
}

/** The query a list or watch request makes. */
export function queryOf(req: HubRequest): OfflineQuery {
  return {
    component: req.component,
    resource: resourceOf(req),
    namespace: req.info.namespace,
    labelSelector: req.query.get('labelSelector') ?? '',
    fieldSelector: req.query.get('fieldSelector') ?? '',
  };
}

/** Which page of a list: at most `limit` objects (0: all), after object id `after`. */
export interface Page {
  readonly limit: number;
  /** where a continue token left off (an object id), and the resourceVersion it carries */
  readonly after?: { readonly id: string; readonly resourceVersion: string };
}

/** The kind and apiVersion objects of a resource carry (a list is `<kind>List`). */
export interface Identity {
  readonly kind: string;
  readonly apiVersion: string;
}

export type ListAnswer =
  | { readonly coverage: Uncovered }
  | {
      readonly coverage: { readonly state: 'complete' };
      readonly resourceVersion: string;
      readonly identity: Identity;
      /** The object id the next page starts after; undefined on the last page. */
      readonly continue: string | undefined;
      readonly remainingItemCount: number | undefined;
      /** The objects as stored, in key order, read as they are consumed. */
      readonly bodies: AsyncIterable<readonly Buffer[]>;
    };

export type WatchAnswer =
  | { readonly coverage: Uncovered }
  | { readonly coverage: { readonly state: 'complete' }; readonly feed: WatchFeed };

/** Object ids read per LevelDB round trip when a list is assembled from ids. */
const FETCH_BATCH = 500;

/**
 * What local/ reads the cache by, offline: one query per kind of answer,
 * each saying first whether the cache knows (cache-knowledge.ts) and then
 * what it holds. The store's memory (resources, scopes, members, indexes)
 * and how it is read (member keys, key ranges, whole bodies) stay behind it.
 */
export class OfflineCache {
  private readonly store: CacheStore;

  constructor(store: CacheStore) {
    this.store = store;
  }

  /** Set when the store was unusable at start and moved aside: the node lost its cache. */
  loss(): CacheLoss | undefined {
    return this.store.loss();
  }

  identity(component: string, resource: ResourceRef): Identity {
    return {
      kind: this.kindOf(this.store.entry(component, resource), resource),
      apiVersion: apiVersionOf(resource),
    };
  }

  /**
   * One page of a list, from the known scope that contains the query
   * (exactly its members, filtered by the query's selectors), or why it
   * cannot be answered; a malformed selector is an error.
   */
  async list(query: OfflineQuery, page: Page): Promise<ListAnswer | SelectorError> {
    await this.store.writesSettled(query.component, query.resource);
    const known = this.knownScope(query);
    if (known instanceof Error || 'coverage' in known) return known;
    const { scope, entry, covering } = known;
    const rv =
      page.after?.resourceVersion ??
      (covering.rv === '' ? this.store.maxResourceVersion() : covering.rv);
    // What the scope's latest list and the watch events since delivered: never what
    // another scope's older snapshot still holds (an object deleted upstream since).
    const members = await this.store.scopeMembers(entry, covering.scope.id);
    const found = scope.unfiltered
      ? await this.rangePage(entry, scope, new Set(members), page)
      : this.idsPage(entry, this.matching(entry, scope, members), page);
    return {
      coverage: { state: 'complete' },
      resourceVersion: rv,
      identity: { kind: this.kindOf(entry, entry.ref), apiVersion: apiVersionOf(entry.ref) },
      ...found,
    };
  }

  /** What the cache knows of one object: its copy, its proven absence, or nothing. */
  async object(
    component: string,
    resource: ResourceRef,
    namespace: string,
    name: string,
  ): Promise<ObjectKnowledge> {
    await this.store.writesSettled(component, resource);
    return objectKnowledge(this.store, component, resource, namespace, name);
  }

  /**
   * A watch of the known scope that contains the query, from `fromRv`
   * ('' or '0', or `initialEvents`: every object), following later commits;
   * or why it cannot be answered.
   */
  watch(
    query: OfflineQuery,
    from: { resourceVersion: string; initialEvents: boolean },
  ): WatchAnswer | SelectorError {
    const known = this.knownScope(query);
    if (known instanceof Error || 'coverage' in known) return known;
    const { scope, entry, covering } = known;
    const feed = new WatchFeed({
      store: this.store,
      entry,
      covering,
      scope,
      fromRv: from.resourceVersion,
      replayAll: from.resourceVersion === '' || from.resourceVersion === '0' || from.initialEvents,
      identity: { kind: this.kindOf(entry, entry.ref), apiVersion: apiVersionOf(entry.ref) },
    });
    return { coverage: { state: 'complete' }, feed };
  }

  /** Can the cache answer this read exactly (the truth as of its scope), rather than with a 503? */
  async answersExactly(req: HubRequest): Promise<boolean> {
    const info = req.info;
    switch (info.verb) {
      case 'get':
        return (
          (await this.object(req.component, resourceRefOf(info), info.namespace, info.name))
            .kind !== 'unknown'
        );
      case 'list':
      case 'watch': {
        const known = this.knownScope(queryOf(req));
        // A malformed selector is answered 400 at once, online or not.
        return known instanceof Error || !('coverage' in known);
      }
      default:
        return false;
    }
  }

  /** The component's stored copy of an object, if any (a create of it is a conflict). */
  cachedObject(
    component: string,
    resource: ResourceRef,
    namespace: string,
    name: string,
  ): Buffer | undefined {
    return this.store.readObject(component, resource, objectId(namespace, name));
  }

  /** A write acknowledged offline (apply-rules.ts applyLocalWrite), never sent upstream. */
  writeLocal(
    component: string,
    resource: ResourceRef,
    namespace: string,
    name: string,
    mutate: LocalMutation,
  ): Promise<LocalWriteResult> {
    return this.store.writeLocal(component, resource, objectId(namespace, name), mutate);
  }

  /** The last token issued to the component for this TokenRequest; an error when its body is unreadable. */
  token(
    component: string,
    namespace: string,
    serviceAccount: string,
    body: Buffer | undefined,
  ): TokenRecord | undefined | Error {
    const key = tokenStoreKey(component, namespace, serviceAccount, body);
    return key instanceof Error ? key : this.store.readToken(key);
  }

  /** The query's scope and the known scope that contains it, or why there is none. */
  private knownScope(
    query: OfflineQuery,
  ):
    | { scope: CompiledScope; entry: ResourceEntry; covering: ScopeState }
    | { coverage: Uncovered }
    | SelectorError {
    const scope = compileScope(
      query.resource,
      query.namespace,
      query.labelSelector,
      query.fieldSelector,
    );
    if (scope instanceof Error) return scope;
    const entry = this.store.entry(query.component, query.resource);
    const covering = coveringScope(entry, scope);
    if (entry === undefined || covering === undefined) {
      return { coverage: uncovered(entry, query.component, query.resource, scope) };
    }
    return { scope, entry, covering };
  }

  private kindOf(entry: ResourceEntry | undefined, ref: ResourceRef): string {
    return entry?.kind ?? this.store.recordedKind(ref) ?? builtinKind(ref) ?? guessKind(ref);
  }

  /** The members in the query's namespace that match its selectors (by meta when loaded). */
  private matching(
    entry: ResourceEntry,
    scope: CompiledScope,
    members: readonly string[],
  ): { ids: readonly string[]; filter: ((raw: Buffer) => boolean) | undefined } {
    const inNamespace =
      scope.def.namespace === ''
        ? members
        : members.filter((id) => id.startsWith(namespacePrefix(scope.def.namespace)));
    const state = entry.state;
    if (state === undefined) {
      // A cold resource: its members answer without loading every object's meta
      // (for 100,000 cached objects that load takes over a second; a booting
      // kubelet cannot wait), each checked against the scope as it is read.
      return { ids: inNamespace, filter: rawFilter(entry.ref, scope) };
    }
    const ids = inNamespace.filter((id) => {
      const meta = state.meta.get(id);
      return (
        meta !== undefined &&
        scopeMatches(scope, splitObjectId(id).namespace, meta.labels, meta.fields)
      );
    });
    return { ids, filter: undefined };
  }

  /** A page of a filtered list, by object ids read in batches. */
  private idsPage(
    entry: ResourceEntry,
    matching: { ids: readonly string[]; filter: ((raw: Buffer) => boolean) | undefined },
    page: Page,
  ): PageContent {
    const { ids: allIds, filter } = matching;
    const start = page.after?.id;
    let from = 0;
    if (start !== undefined) {
      from = allIds.findIndex((id) => id > start);
      if (from < 0) from = allIds.length;
    }
    const remaining = allIds.length - from;
    const ids = page.limit > 0 ? allIds.slice(from, from + page.limit) : allIds.slice(from);
    // The page continues after the last id examined, even if the filter dropped it.
    const lastId = ids[ids.length - 1];
    const more = page.limit > 0 && remaining > ids.length && lastId !== undefined;
    const store = this.store;
    async function* bodies(): AsyncGenerator<Buffer[]> {
      for (let i = 0; i < ids.length; i += FETCH_BATCH) {
        const values = await store.readObjects(
          entry.component,
          entry.ref,
          ids.slice(i, i + FETCH_BATCH),
        );
        yield values.filter(
          (raw): raw is Buffer => raw !== undefined && (filter === undefined || filter(raw)),
        );
      }
    }
    return {
      continue: more ? lastId : undefined,
      // With a filter still to apply, how many of the rest match is not known.
      remainingItemCount: more && filter === undefined ? remaining - ids.length : undefined,
      bodies: bodies(),
    };
  }

  /**
   * A page of an unfiltered list, streamed from LevelDB in key order keeping
   * the covering scope's members only. When they are every cached object
   * (the usual case: an unfiltered scope owns its resource), the bodies
   * stream without keys.
   */
  private async rangePage(
    entry: ResourceEntry,
    scope: CompiledScope,
    members: ReadonlySet<string>,
    page: Page,
  ): Promise<PageContent> {
    const store = this.store;
    const namespace = scope.def.namespace;
    const start = page.after?.id;
    if (page.limit <= 0) {
      const whole = start === undefined && members.size === entry.objects;
      async function* bodies(): AsyncGenerator<Buffer[]> {
        if (whole) {
          yield* store.iterateBodies(entry.component, entry.ref, namespace);
          return;
        }
        for await (const batch of store.iterateObjects(
          entry.component,
          entry.ref,
          namespace,
          start,
        )) {
          yield batch.filter(([id]) => members.has(id)).map(([, raw]) => raw);
        }
      }
      return { continue: undefined, remainingItemCount: undefined, bodies: bodies() };
    }
    const found: Array<[string, Buffer]> = [];
    let more = false;
    for await (const batch of store.iterateObjects(entry.component, entry.ref, namespace, start)) {
      for (const item of batch) {
        if (!members.has(item[0])) continue;
        if (found.length === page.limit) {
          more = true;
          break;
        }
        found.push(item);
      }
      if (more) break;
    }
    const last = found[found.length - 1];
    return {
      continue: more && last !== undefined ? last[0] : undefined,
      remainingItemCount: undefined,
      bodies: oneBatch(found.map(([, raw]) => raw)),
    };
  }
}

interface PageContent {
  continue: string | undefined;
  remainingItemCount: number | undefined;
  bodies: AsyncIterable<readonly Buffer[]>;
}

async function* oneBatch(batch: readonly Buffer[]): AsyncGenerator<readonly Buffer[]> {
  yield batch;
}

/** Checks a raw object against the scope; used only where no in-memory meta is loaded. */
function rawFilter(ref: ResourceRef, scope: CompiledScope): (raw: Buffer) => boolean {
  return (raw) => {
    try {
      const obj = JSON.parse(raw.toString('utf8')) as {
        metadata?: { namespace?: string; labels?: Record<string, string> };
      };
      return scopeMatches(
        scope,
        obj.metadata?.namespace ?? '',
        obj.metadata?.labels,
        fieldsOf(ref.group, ref.resource, obj),
      );
    } catch {
      return false;
    }
  };
}
