import fastJsonPatch from 'fast-json-patch';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** RFC 7386 JSON merge patch: objects merge, null deletes, everything else replaces. */
export function jsonMergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const result: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = jsonMergePatch(result[key] ?? null, value);
  }
  return result;
}

/**
 * List fields merged by key in a strategic merge patch, for what kubelet
 * patches (node status, node spec taints, pod status). Any other list is
 * replaced, as for types without a patch strategy.
 */
const MERGE_KEYS: Readonly<Record<string, string>> = {
  'status.conditions': 'type',
  'status.addresses': 'type',
  'spec.taints': 'key',
  'metadata.ownerReferences': 'uid',
  'status.containerStatuses': 'name',
  'status.initContainerStatuses': 'name',
  'status.ephemeralContainerStatuses': 'name',
  'status.podIPs': 'ip',
  'status.hostIPs': 'ip',
};

const SET_ORDER = '$setElementOrder/';
const DELETE_FROM = '$deleteFromPrimitiveList/';

function mergeKeyedList(target: Json, patch: Json[], key: string, path: string): Json[] {
  const result: Json[] = Array.isArray(target) ? [...target] : [];
  const indexOf = (value: Json): number =>
    result.findIndex((item) => isObject(item) && item[key] === value);
  for (const item of patch) {
    if (!isObject(item)) {
      result.push(item);
      continue;
    }
    const at = indexOf(item[key] ?? null);
    if (item.$patch === 'delete') {
      if (at >= 0) result.splice(at, 1);
    } else if (item.$patch === 'replace') {
      const { $patch: _directive, ...rest } = item;
      if (at >= 0) result[at] = rest;
      else result.push(rest);
    } else if (at >= 0) {
      result[at] = strategicMerge(result[at] ?? null, item, path);
    } else {
      result.push(strategicMerge(null, item, path));
    }
  }
  return result;
}

function applyOrder(list: Json, order: Json, key: string | undefined): Json {
  if (!Array.isArray(list) || !Array.isArray(order)) return list;
  const id = (item: Json): Json =>
    key !== undefined && isObject(item) ? (item[key] ?? null) : item;
  const rank = new Map(
    order.map((o, i) => [JSON.stringify(key !== undefined && isObject(o) ? o[key] : o), i]),
  );
  return [...list].sort(
    (a, b) =>
      (rank.get(JSON.stringify(id(a))) ?? order.length) -
      (rank.get(JSON.stringify(id(b))) ?? order.length),
  );
}

/**
 * Strategic merge patch, the parts client-go's CreateTwoWayMergePatch emits
 * for the fields above: maps merge, null deletes, keyed lists merge by key
 * (with `$patch: delete|replace` items), `$setElementOrder/<list>` reorders,
 * `$deleteFromPrimitiveList/<list>` removes values, `$patch: replace` on a map
 * replaces it.
 */
export function strategicMerge(target: Json, patch: Json, path = ''): Json {
  if (!isObject(patch)) return patch;
  if (patch.$patch === 'replace') {
    const { $patch: _directive, ...rest } = patch;
    return rest;
  }
  if (patch.$patch === 'delete') return null;
  const result: JsonObject = isObject(target) ? { ...target } : {};
  const orders: Array<[string, Json]> = [];
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$retainKeys' || key === '$patch') continue;
    if (key.startsWith(SET_ORDER)) {
      orders.push([key.slice(SET_ORDER.length), value]);
      continue;
    }
    if (key.startsWith(DELETE_FROM)) {
      const field = key.slice(DELETE_FROM.length);
      const drop = new Set((Array.isArray(value) ? value : []).map((v) => JSON.stringify(v)));
      const current = result[field];
      if (Array.isArray(current))
        result[field] = current.filter((v) => !drop.has(JSON.stringify(v)));
      continue;
    }
    const childPath = path === '' ? key : `${path}.${key}`;
    if (value === null) {
      delete result[key];
    } else if (Array.isArray(value)) {
      const mergeKey = MERGE_KEYS[childPath];
      result[key] =
        mergeKey === undefined
          ? value
          : mergeKeyedList(result[key] ?? null, value, mergeKey, childPath);
    } else if (isObject(value)) {
      const merged = strategicMerge(result[key] ?? null, value, childPath);
      if (merged === null) delete result[key];
      else result[key] = merged;
    } else {
      result[key] = value;
    }
  }
  for (const [field, order] of orders) {
    const childPath = path === '' ? field : `${path}.${field}`;
    if (field in result)
      result[field] = applyOrder(result[field] ?? null, order, MERGE_KEYS[childPath]);
  }
  return result;
}

export type PatchType = 'merge' | 'strategic' | 'json';

export function patchTypeOf(contentType: string | undefined): PatchType | undefined {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase();
  if (type === 'application/merge-patch+json') return 'merge';
  if (type === 'application/strategic-merge-patch+json') return 'strategic';
  if (type === 'application/json-patch+json') return 'json';
  return undefined;
}

/** Applies a patch of the given type; an Error says why it cannot be applied (400 for the client). */
export function applyPatch(target: unknown, type: PatchType, body: Buffer): unknown {
  let patch: unknown;
  try {
    patch = JSON.parse(body.toString('utf8'));
  } catch (err) {
    return new Error(`the patch is not valid JSON: ${String(err)}`);
  }
  const doc = structuredClone(target) as Json;
  switch (type) {
    case 'merge':
      return jsonMergePatch(doc, patch as Json);
    case 'strategic':
      return strategicMerge(doc, patch as Json);
    case 'json': {
      if (!Array.isArray(patch)) return new Error('a JSON patch must be an array of operations');
      try {
        return fastJsonPatch.applyPatch(doc, patch as fastJsonPatch.Operation[], true, false)
          .newDocument;
      } catch (err) {
        return new Error(`the JSON patch cannot be applied: ${String(err)}`);
      }
    }
  }
}
