import { qualifiedResource, serviceUnavailable, type KubeStatus } from '../../src/kube/status.ts';
import { requestScope, resourceRefOf } from '../cache/cache-manager.ts';
import type { HubRequest } from '../hub-request.ts';
import type { CacheStore } from '../cache/cache-store.ts';
import type { ResourceEntry } from '../cache/resource-state.ts';
import type { CacheLoss } from '../cache/store-records.ts';
import { objectId, type ResourceRef } from '../cache/keys.ts';
import type { ScopeState } from '../cache/resource-state.ts';
import { scopeContains, scopeWouldHold, type CompiledScope } from '../cache/scope.ts';

/**
 * What the cache knows, decided here and nowhere else: every offline answer
 * (GET, LIST, WATCH, watch-list) and the boot window's "answer from the
 * cache or wait for upstream" ask this module.
 *
 * The cache knows a list only from a scope that was listed (or watch-listed)
 * online and kept since: as of its latest list and the watch events since,
 * never mixed with an older snapshot of another scope. A request is answered
 * from such a scope when the scope contains it (the same scope, or a wider
 * one it can be filtered from exactly). It knows an object is gone only when
 * such a scope would hold it and does not, or when it saw the deletion.
 * Everything else is a 503 naming what the node never cached: an empty pod
 * list or a 404 for the node would make kubelet kill its pods or give up.
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

/** Can the cache answer this read exactly (the truth as of its scope), rather than with a 503? */
export async function answersExactly(store: CacheStore, req: HubRequest): Promise<boolean> {
  const info = req.info;
  const ref = resourceRefOf(info);
  switch (info.verb) {
    case 'get':
      return (
        (await objectKnowledge(store, req.component, ref, info.namespace, info.name)).kind !==
        'unknown'
      );
    case 'list':
    case 'watch': {
      const scope = requestScope(req);
      // A malformed selector is answered 400 at once, online or not.
      if (scope instanceof Error) return true;
      return coveringScope(store.entry(req.component, ref), scope) !== undefined;
    }
    default:
      return false;
  }
}

function lossSuffix(loss: CacheLoss | undefined): string {
  return loss === undefined
    ? ''
    : ` (the node's cache was lost at ${loss.at}: the store could not be opened and was moved aside to ${loss.movedTo})`;
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

/**
 * The 503 for a list or watch the cache cannot answer exactly. No
 * Retry-After: client-go would retry the same read up to ten times before
 * kubectl printed the error; kubelet's reflectors retry on their own.
 */
export function scopeNotCached(
  component: string,
  ref: ResourceRef,
  scope: CompiledScope,
  loss: CacheLoss | undefined,
): KubeStatus {
  return serviceUnavailable(
    `edgebox: kube-apiserver is unreachable and ${component} never listed ` +
      `${qualifiedResource(ref)} ${scopeText(scope)} online, nor a scope containing it` +
      `${lossSuffix(loss)}; the node does not know them and will not guess`,
  );
}

/** The 503 for a GET of an object the cache neither holds nor knows to be gone. */
export function objectNotCached(
  component: string,
  ref: ResourceRef,
  namespace: string,
  name: string,
  loss: CacheLoss | undefined,
): KubeStatus {
  const where = namespace === '' ? '' : ` in namespace ${namespace}`;
  return serviceUnavailable(
    `edgebox: kube-apiserver is unreachable and ${component} never read ` +
      `${qualifiedResource(ref)} ${JSON.stringify(name)}${where} online, nor listed a scope that would hold it` +
      `${lossSuffix(loss)}; the node cannot tell whether it exists`,
  );
}
