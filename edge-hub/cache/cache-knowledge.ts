import { qualifiedResource } from '../../src/kube/status.ts';
import type { CacheStore } from './cache-store.ts';
import { objectId, type ResourceRef } from './keys.ts';
import type { ResourceEntry, ScopeState } from './resource-state.ts';
import { scopeContains, scopeWouldHold, type CompiledScope } from './scope.ts';

/**
 * What the cache knows, decided here and nowhere else: every offline answer
 * (GET, LIST, WATCH, watch-list) and the boot window's "answer from the
 * cache or wait for upstream" ask this module, through offline-cache.ts.
 *
 * The cache knows a list only from a scope that was listed (or watch-listed)
 * online and kept since: as of its latest list and the watch events since,
 * never mixed with an older snapshot of another scope. A request is answered
 * from such a scope when the scope contains it (the same scope, or a wider
 * one it can be filtered from exactly). It knows an object is gone only when
 * such a scope would hold it and does not, or when it saw the deletion.
 * Everything else is unknown, and local/ answers it with a 503 naming what
 * the node never cached: an empty pod list or a 404 for the node would make
 * kubelet kill its pods or give up.
 */

/** The complete scope an answer for `scope` is computed from, or undefined when none contains it. */
export function coveringScope(
  entry: ResourceEntry | undefined,
  scope: CompiledScope,
): ScopeState | undefined {
  if (entry === undefined) return undefined;
  const exact = entry.scopes.get(scope.id);
  if (exact?.complete === true) return exact;
  let best: ScopeState | undefined;
  for (const s of entry.scopes.values()) {
    if (!s.complete || !scopeContains(s.scope, scope)) continue;
    // The most recently listed of the scopes around it: each is consistent on its own.
    if (best === undefined || (s.syncedAt ?? '') > (best.syncedAt ?? '')) best = s;
  }
  return best;
}

/**
 * How much of a scope the cache knows. Complete: a scope that contains it
 * was listed (coveringScope). Partial: the component cached objects of the
 * resource (other scopes' lists, watches, GETs), which are not known to be
 * all of this scope's. Never: it cached nothing of the resource. The last
 * two say why, for the 503 that answers them.
 */
export type Coverage = { readonly state: 'complete' } | Uncovered;
export interface Uncovered {
  readonly state: 'partial' | 'never';
  readonly why: string;
}

/** Why a scope no complete scope contains (coveringScope undefined) is not known. */
export function uncovered(
  entry: ResourceEntry | undefined,
  component: string,
  ref: ResourceRef,
  scope: CompiledScope,
): Uncovered {
  const why =
    `${component} never listed ${qualifiedResource(ref)} ${scopeText(scope)} online, ` +
    'nor a scope containing it';
  const listedElsewhere = [...(entry?.scopes.values() ?? [])].some((s) => s.complete);
  if (entry === undefined || (entry.objects === 0 && !listedElsewhere)) {
    return { state: 'never', why };
  }
  return {
    state: 'partial',
    why: `${why} (what it cached of them came from other lists, watches or reads, not known to be all)`,
  };
}

function scopeText(scope: CompiledScope): string {
  const where =
    scope.def.namespace === '' ? 'in all namespaces' : `in namespace ${scope.def.namespace}`;
  const selectors = [
    scope.def.labelSelector === '' ? '' : `labelSelector ${scope.def.labelSelector}`,
    scope.def.fieldSelector === '' ? '' : `fieldSelector ${scope.def.fieldSelector}`,
  ].filter((s) => s !== '');
  return selectors.length === 0 ? where : `${where} with ${selectors.join(' and ')}`;
}

export type ObjectKnowledge =
  | { readonly kind: 'present'; readonly raw: Buffer }
  | { readonly kind: 'absent' }
  | { readonly kind: 'unknown' };

/** What the cache knows of one object: its copy, its proven absence, or nothing. */
export async function objectKnowledge(
  store: CacheStore,
  component: string,
  ref: ResourceRef,
  namespace: string,
  name: string,
): Promise<ObjectKnowledge> {
  const id = objectId(namespace, name);
  const raw = store.readObject(component, ref, id);
  if (raw !== undefined) return { kind: 'present', raw };
  const entry = store.entry(component, ref);
  if (entry === undefined) return { kind: 'unknown' };
  for (const s of entry.scopes.values()) {
    if (s.complete && scopeWouldHold(s.scope, namespace, name)) return { kind: 'absent' };
  }
  if (await store.sawDeletion(entry, id)) return { kind: 'absent' };
  return { kind: 'unknown' };
}
