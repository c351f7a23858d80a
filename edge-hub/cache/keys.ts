import type { RequestInfo } from '../../src/kube/request-info.ts';

/**
 * The LevelDB key layout (documented in README.md). Every segment is
 * percent-encoded so `/` only ever separates segments, which keeps prefix
 * scans exact: `o/kubelet//v1/pods/ns1/` can never match namespace `ns10`.
 */

/** A resource as the apiserver serves it: group ('' for core), version, plural name. */
export interface ResourceRef {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
}

const enc = encodeURIComponent;

/** The highest code unit: `prefix + END` bounds a prefix scan from above. */
const END = '\uffff';

export const LAYOUT_VERSION = '1';
export const LAYOUT_VERSION_KEY = 'v';
export const MAX_RV_KEY = 'g/maxrv';
/** Set in a fresh store that replaced one moved aside as unusable (store-records' CacheLoss). */
export const CACHE_LOSS_KEY = 'g/lost';

export function resourcePath(ref: ResourceRef): string {
  return `${enc(ref.group)}/${enc(ref.version)}/${enc(ref.resource)}`;
}

export function resourceRefOf(info: RequestInfo): ResourceRef {
  return { group: info.apiGroup, version: info.apiVersion, resource: info.resource };
}

export function apiVersionOf(ref: ResourceRef): string {
  return ref.group === '' ? ref.version : `${ref.group}/${ref.version}`;
}

/** An object's id inside one component's resource: `<ns>/<name>`, sorted as etcd sorts keys. */
export function objectId(namespace: string, name: string): string {
  return `${enc(namespace)}/${enc(name)}`;
}

export function splitObjectId(id: string): { namespace: string; name: string } {
  const slash = id.indexOf('/');
  return {
    namespace: decodeURIComponent(id.slice(0, slash)),
    name: decodeURIComponent(id.slice(slash + 1)),
  };
}

/** The prefix every object id of one namespace starts with. */
export function namespacePrefix(namespace: string): string {
  return `${enc(namespace)}/`;
}

function resourceBase(tag: string, component: string, ref: ResourceRef): string {
  return `${tag}/${enc(component)}/${resourcePath(ref)}/`;
}

export const keys = {
  /** raw object JSON */
  objects: (component: string, ref: ResourceRef): string => resourceBase('o', component, ref),
  /** per-object metadata the indexes are built from (see ObjectMeta) */
  metas: (component: string, ref: ResourceRef): string => resourceBase('k', component, ref),
  /** deleted objects, to refuse resurrection by stale lists and to replay DELETED to watches */
  tombstones: (component: string, ref: ResourceRef): string => resourceBase('t', component, ref),
  /** list/watch scopes */
  scopes: (component: string, ref: ResourceRef): string => resourceBase('s', component, ref),
  /** the object ids a scope covers: m/<comp>/<g>/<v>/<r>/<scopeId>/<ns>/<name> */
  members: (component: string, ref: ResourceRef, scopeId: string): string =>
    `${resourceBase('m', component, ref)}${enc(scopeId)}/`,
  /** per component+resource totals for `hub status` and metrics */
  resourceRecord: (component: string, ref: ResourceRef): string =>
    `r/${enc(component)}/${resourcePath(ref)}`,
  /** TokenRequest answers: a/<comp>/<ns>/<serviceaccount>/<request hash> */
  token: (component: string, namespace: string, serviceAccount: string, hash: string): string =>
    `a/${enc(component)}/${enc(namespace)}/${enc(serviceAccount)}/${enc(hash)}`,
  /** a decided replacement of a scope from staged items, finished at open if a crash cut it */
  listIntent: (txid: string): string => `${ALL_INTENTS_PREFIX}${enc(txid)}`,
};

export const ALL_INTENTS_PREFIX = 'x/';

export const ALL_SCOPES_PREFIX = 's/';
export const ALL_RESOURCE_RECORDS_PREFIX = 'r/';

/** Parses `s/<comp>/<g>/<v>/<r>/<scopeId>` or `r/<comp>/<g>/<v>/<r>` back into its parts. */
export function parseResourceKey(
  key: string,
): { component: string; ref: ResourceRef; rest: string } | undefined {
  const parts = key.split('/');
  if (parts.length < 5) return undefined;
  const [, component, group, version, resource, ...rest] = parts;
  if (component === undefined || group === undefined || version === undefined) return undefined;
  if (resource === undefined) return undefined;
  return {
    component: decodeURIComponent(component),
    ref: {
      group: decodeURIComponent(group),
      version: decodeURIComponent(version),
      resource: decodeURIComponent(resource),
    },
    rest: rest.map((r) => decodeURIComponent(r)).join('/'),
  };
}

/** Bounds for an iterator over every key that starts with `prefix`. */
export function prefixRange(prefix: string, after?: string): { gt: string; lt: string } {
  return { gt: after === undefined ? prefix : prefix + after, lt: prefix + END };
}
