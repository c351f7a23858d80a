/**
 * Strategic merge patch (application/strategic-merge-patch+json) as
 * apimachinery's strategicpatch package applies it, and JSON merge patch.
 * Go reads list strategies from struct tags (`patchStrategy:"merge"
 * patchMergeKey:"type"`); here the same tags are written down as data per
 * kind, copied from k8s.io/api v1.32. A list with no entry is atomic: the
 * patch replaces it. The API double applies patches with it, and EdgeHub
 * the node-status patches it acknowledges offline.
 */

type JsonObject = Record<string, unknown>;

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export interface PatchMeta {
  readonly fields?: Readonly<Record<string, FieldPatchMeta>>;
}

export interface FieldPatchMeta {
  /** Lists only: merge elements (by mergeKey for objects, as a set for primitives). */
  readonly strategy?: 'merge';
  readonly mergeKey?: string;
  /** `patchStrategy:"merge,retainKeys"`: `$retainKeys` in an element clears unlisted keys. */
  readonly retainKeys?: boolean;
  /** Meta of the nested object, or of each element of a list. */
  readonly meta?: PatchMeta;
}

/** A malformed patch; the apiserver answers 400 or 422 depending on the kind. */
export class StrategicMergePatchError extends Error {
  readonly code: 400 | 422;
  constructor(message: string, code: 400 | 422 = 422) {
    super(message);
    this.name = 'StrategicMergePatchError';
    this.code = code;
  }
}

const merge = (mergeKey?: string, meta?: PatchMeta, retainKeys = false): FieldPatchMeta => ({
  strategy: 'merge',
  ...(mergeKey === undefined ? {} : { mergeKey }),
  ...(meta === undefined ? {} : { meta }),
  retainKeys,
});

const OBJECT_META: PatchMeta = {
  fields: { finalizers: merge(), ownerReferences: merge('uid') },
};

const CONTAINER: PatchMeta = {
  fields: {
    ports: merge('containerPort'),
    env: merge('name'),
    volumeMounts: merge('mountPath'),
    volumeDevices: merge('devicePath'),
  },
};

const POD_SPEC: PatchMeta = {
  fields: {
    volumes: merge('name', undefined, true),
    initContainers: merge('name', CONTAINER),
    containers: merge('name', CONTAINER),
    ephemeralContainers: merge('name', CONTAINER),
    imagePullSecrets: merge('name'),
    hostAliases: merge('ip'),
    topologySpreadConstraints: merge('topologyKey'),
    schedulingGates: merge('name'),
    resourceClaims: merge('name', undefined, true),
  },
};

const POD_STATUS: PatchMeta = {
  fields: {
    conditions: merge('type'),
    hostIPs: merge('ip'),
    podIPs: merge('ip'),
    resourceClaimStatuses: merge('name', undefined, true),
  },
};

const withMeta = (fields: Record<string, FieldPatchMeta> = {}): PatchMeta => ({
  fields: { metadata: { meta: OBJECT_META }, ...fields },
});

/** Patch meta per `group/kind` (core group is empty). Kinds not listed get ObjectMeta only. */
const PATCH_META: Record<string, PatchMeta> = {
  '/Pod': withMeta({ spec: { meta: POD_SPEC }, status: { meta: POD_STATUS } }),
  '/Node': withMeta({
    spec: { meta: { fields: { podCIDRs: merge() } } },
    status: { meta: { fields: { conditions: merge('type'), addresses: merge('type') } } },
  }),
  '/Namespace': withMeta({ status: { meta: { fields: { conditions: merge('type') } } } }),
  '/Service': withMeta({
    spec: { meta: { fields: { ports: merge('port') } } },
    status: { meta: { fields: { conditions: merge('type') } } },
  }),
  '/ServiceAccount': withMeta({ secrets: merge('name') }),
  'storage.k8s.io/CSINode': withMeta({ spec: { meta: { fields: { drivers: merge('name') } } } }),
};

export function patchMetaFor(group: string, kind: string): PatchMeta {
  return PATCH_META[`${group}/${kind}`] ?? withMeta();
}

const DELETE_FIELD = Symbol('delete');
const SET_ELEMENT_ORDER = '$setElementOrder/';

export function strategicMergePatch(
  original: JsonObject,
  patch: unknown,
  meta: PatchMeta,
): JsonObject {
  if (!isJsonObject(patch)) {
    throw new StrategicMergePatchError(
      `strategic merge patch must be a JSON object, got ${describe(patch)}`,
      400,
    );
  }
  const result = mergeMap(original, patch, meta);
  return result === DELETE_FIELD ? {} : result;
}

function mergeMap(
  original: JsonObject,
  patch: JsonObject,
  meta: PatchMeta | undefined,
): JsonObject | typeof DELETE_FIELD {
  const directive = patch.$patch;
  if (directive === 'delete') return DELETE_FIELD;
  if (directive === 'replace') return stripDirectives(patch) as JsonObject;
  if (directive !== undefined && directive !== 'merge') {
    throw new StrategicMergePatchError(`Unknown patch type: ${String(directive)}`, 400);
  }
  const result: JsonObject = { ...original };
  const orders: Array<[string, unknown]> = [];
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys') continue;
    if (key.startsWith(SET_ELEMENT_ORDER)) {
      orders.push([key.slice(SET_ELEMENT_ORDER.length), value]);
      continue;
    }
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      deleteFromPrimitiveList(result, key.slice('$deleteFromPrimitiveList/'.length), value);
      continue;
    }
    if (value === null) {
      delete result[key];
      continue;
    }
    const fieldMeta = meta?.fields?.[key];
    const current = result[key];
    if (isJsonObject(value)) {
      const merged = mergeMap(isJsonObject(current) ? current : {}, value, fieldMeta?.meta);
      if (merged === DELETE_FIELD) delete result[key];
      else result[key] = merged;
    } else if (Array.isArray(value)) {
      result[key] =
        fieldMeta?.strategy === 'merge'
          ? mergeList(Array.isArray(current) ? current : [], value, key, fieldMeta)
          : stripDirectives(value);
    } else {
      result[key] = value;
    }
  }
  for (const [field, order] of orders) {
    const list = result[field];
    if (Array.isArray(list) && Array.isArray(order)) {
      result[field] = inElementOrder(list, order, meta?.fields?.[field]?.mergeKey);
    }
  }
  const retain = patch.$retainKeys;
  if (retain !== undefined) {
    if (!Array.isArray(retain) || retain.some((k) => typeof k !== 'string')) {
      throw new StrategicMergePatchError(
        `$retainKeys must be a list of strings, got ${describe(retain)}`,
        400,
      );
    }
    for (const key of Object.keys(result)) if (!retain.includes(key)) delete result[key];
  }
  return result;
}

function mergeList(
  original: unknown[],
  patch: unknown[],
  field: string,
  fieldMeta: FieldPatchMeta,
): unknown[] {
  const patchHasObjects = patch.some(isJsonObject);
  if (!patchHasObjects) {
    // A list of primitives with the merge strategy is a set: union, original order first.
    const result = [...original];
    for (const v of patch) if (!result.includes(v)) result.push(v);
    return result;
  }
  if (patch.some((e) => isJsonObject(e) && e.$patch === 'replace')) {
    return patch.filter((e) => !(isJsonObject(e) && e.$patch === 'replace')).map(stripDirectives);
  }
  const mergeKey = fieldMeta.mergeKey;
  if (mergeKey === undefined) {
    throw new StrategicMergePatchError(`field ${field} has the merge strategy but no merge key`);
  }
  const result = [...original];
  for (const element of patch) {
    if (!isJsonObject(element)) {
      throw new StrategicMergePatchError(
        `unable to merge list ${field}: element ${describe(element)} is not an object`,
      );
    }
    const keyValue = element[mergeKey];
    if (keyValue === undefined) {
      throw new StrategicMergePatchError(
        `map: ${JSON.stringify(element)} does not contain declared merge key: ${mergeKey}`,
      );
    }
    const index = result.findIndex((e) => isJsonObject(e) && e[mergeKey] === keyValue);
    if (element.$patch === 'delete') {
      if (index !== -1) {
        for (let i = result.length - 1; i >= 0; i--) {
          const e = result[i];
          if (isJsonObject(e) && e[mergeKey] === keyValue) result.splice(i, 1);
        }
      }
      continue;
    }
    const base = index === -1 ? {} : (result[index] as JsonObject);
    const merged = mergeMap(base, element, fieldMeta.meta);
    if (merged === DELETE_FIELD) {
      if (index !== -1) result.splice(index, 1);
    } else if (index === -1) {
      result.push(merged);
    } else {
      result[index] = merged;
    }
  }
  return result;
}

/**
 * `$setElementOrder/<list>`: the order the client wants (kubelet sends it with
 * node conditions); elements it does not name keep their order, after those it does.
 */
function inElementOrder(
  list: unknown[],
  order: unknown[],
  mergeKey: string | undefined,
): unknown[] {
  const idOf = (e: unknown): string =>
    JSON.stringify(mergeKey !== undefined && isJsonObject(e) ? e[mergeKey] : e);
  const rank = new Map(order.map((e, i) => [idOf(e), i]));
  return [...list].sort(
    (a, b) => (rank.get(idOf(a)) ?? order.length) - (rank.get(idOf(b)) ?? order.length),
  );
}

function deleteFromPrimitiveList(target: JsonObject, field: string, values: unknown): void {
  if (!Array.isArray(values)) {
    throw new StrategicMergePatchError(
      `$deleteFromPrimitiveList/${field} must be a list, got ${describe(values)}`,
      400,
    );
  }
  const current = target[field];
  if (!Array.isArray(current)) return;
  const kept = current.filter((v) => !values.includes(v));
  target[field] = kept;
}

/** Directives never reach the stored object. */
function stripDirectives(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripDirectives);
  if (!isJsonObject(value)) return value;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(value)) {
    if (k.startsWith('$')) continue;
    out[k] = stripDirectives(v);
  }
  return out;
}

function describe(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'a list' : typeof value;
}

/** RFC 7386 JSON merge patch (application/merge-patch+json). */
export function jsonMergePatch(target: unknown, patch: unknown): unknown {
  if (!isJsonObject(patch)) return patch;
  const result: JsonObject = isJsonObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = jsonMergePatch(result[key], value);
  }
  return result;
}
