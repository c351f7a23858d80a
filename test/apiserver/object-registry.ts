import { randomBytes, randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { z } from 'zod';
import {
  fieldsOf,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  SelectorError,
  type FieldSelector,
  type LabelSelector,
} from '../../src/kube/selectors.ts';
import {
  alreadyExists,
  badRequest,
  conflict,
  forbidden,
  internalError,
  notFound,
  unsupportedMediaType,
  type KubeStatus,
} from '../../src/kube/status.ts';
import {
  cloneObject,
  decodeObject,
  formatTimestamp,
  generateName,
  invalidObject,
  isJsonObject,
  objectKey,
  StatusError,
  validateName,
  type FieldError,
  type JsonObject,
  type KubeObject,
  type ObjectMeta,
} from './object-meta.ts';
import { tokenRequestSchema, type TokenRequestSpec } from '../../src/kube/token-request.ts';
import { strategyFor, type StrategyContext } from './resource-strategies.ts';
import type { ResourceTable, ResourceType } from './resource-types.ts';
import {
  jsonMergePatch,
  patchMetaFor,
  strategicMergePatch,
  StrategicMergePatchError,
} from '../../src/kube/strategic-merge-patch.ts';
import type { StoredObject, VersionedStorage } from './versioned-storage.ts';

/**
 * The apiserver's generic registry (k8s.io/apiserver/pkg/registry/generic)
 * over VersionedStorage: create/get/list/update/patch/delete with the
 * semantics clients rely on (optimistic concurrency, generateName, status
 * subresource, finalizers and graceful deletion, namespace lifecycle). HTTP
 * handlers and tests (`api.store`) both call it; failures throw StatusError
 * carrying the Status the apiserver would answer with.
 */

export type ResourceRef = string | ResourceType;

export type PatchType = 'json' | 'merge' | 'strategic';

export const PATCH_CONTENT_TYPES: Readonly<Record<string, PatchType>> = {
  'application/json-patch+json': 'json',
  'application/merge-patch+json': 'merge',
  'application/strategic-merge-patch+json': 'strategic',
};

export interface ListFilter {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface WriteOptions {
  /** The namespace of the request URL; must agree with the body's. */
  namespace?: string;
  /** The name of the request URL; must agree with the body's (updates). */
  name?: string;
  subresource?: 'status';
  dryRun?: boolean;
}

export const deleteOptionsSchema = z.looseObject({
  kind: z.string().optional(),
  apiVersion: z.string().optional(),
  gracePeriodSeconds: z.number().int().nullable().optional(),
  preconditions: z
    .looseObject({
      uid: z.string().nullable().optional(),
      resourceVersion: z.string().nullable().optional(),
    })
    .nullable()
    .optional(),
  propagationPolicy: z.string().nullable().optional(),
  orphanDependents: z.boolean().nullable().optional(),
  dryRun: z.array(z.string()).nullable().optional(),
});

export type DeleteOptions = z.infer<typeof deleteOptionsSchema>;

export interface DeleteResult {
  /** The object as deleted, or as it stands while deletion waits for finalizers/grace. */
  object: KubeObject;
  /** True when the object is gone from storage. */
  deleted: boolean;
}

export interface TokenIssued {
  token: string;
  user: string;
  groups: string[];
  expiresAtMs: number;
}

export interface ObjectRegistryOptions {
  now?: () => number;
  /** Emulate the controllers that fill every namespace (default ServiceAccount, kube-root-ca.crt). */
  namespaceControllers?: boolean;
  onTokenIssued?: (issued: TokenIssued) => void;
}

/** Namespaces the apiserver refuses to delete. */
const IMMORTAL_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);

export const BOOTSTRAP_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

const API_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';

// Field order of Go's ObjectMeta, so objects read back the way kubectl shows them.
const META_ORDER = [
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
];

function statusError(status: KubeStatus): StatusError {
  return new StatusError(status);
}

function gr(type: ResourceType): { group: string; resource: string } {
  return { group: type.group, resource: type.resource };
}

export class ObjectRegistry {
  readonly resources: ResourceTable;
  readonly storage: VersionedStorage;
  readonly #now: () => number;
  readonly #namespaceControllers: boolean;
  readonly #onTokenIssued: ((issued: TokenIssued) => void) | undefined;
  readonly #strategyContext: StrategyContext;
  readonly #finalizingNamespaces = new Set<string>();
  #nextClusterIP = 10;
  #rootCA: string | undefined;

  constructor(
    resources: ResourceTable,
    storage: VersionedStorage,
    options: ObjectRegistryOptions = {},
  ) {
    this.resources = resources;
    this.storage = storage;
    this.#now = options.now ?? Date.now;
    this.#namespaceControllers = options.namespaceControllers ?? true;
    this.#onTokenIssued = options.onTokenIssued;
    this.#strategyContext = {
      allocateClusterIP: () => {
        const n = this.#nextClusterIP++;
        return `10.96.${Math.floor(n / 256) % 256}.${n % 256}`;
      },
    };
  }

  /** The newest resourceVersion, as a decimal string. */
  get resourceVersion(): string {
    return String(this.storage.resourceVersion);
  }

  /** Drops the event history: watches and lists at any older resourceVersion get 410. */
  compact(): void {
    this.storage.compact();
  }

  type(resource: ResourceRef): ResourceType {
    return typeof resource === 'string' ? this.resources.resolve(resource) : resource;
  }

  /** Creates the namespaces every cluster starts with. */
  bootstrap(): void {
    const ns = this.type('namespaces');
    for (const name of BOOTSTRAP_NAMESPACES) {
      if (this.storage.get(ns, name) === undefined) this.create(ns, { metadata: { name } });
    }
  }

  /** Publishes the cluster CA as kube-root-ca.crt in every namespace (root-ca-cert-publisher). */
  publishRootCA(pem: string): void {
    this.#rootCA = pem;
    if (!this.#namespaceControllers) return;
    for (const ns of this.list('namespaces')) this.#fillNamespace(ns.metadata.name ?? '');
  }

  // ---- reads ----

  get(resource: ResourceRef, name: string, namespace = ''): KubeObject | undefined {
    const type = this.type(resource);
    const stored = this.storage.get(type, objectKey(type.namespaced ? namespace : '', name));
    return stored === undefined ? undefined : (JSON.parse(stored.json) as KubeObject);
  }

  mustGet(resource: ResourceRef, name: string, namespace = ''): KubeObject {
    const type = this.type(resource);
    const obj = this.get(type, name, namespace);
    if (obj === undefined) throw statusError(notFound(gr(type), name));
    return obj;
  }

  list(resource: ResourceRef, filter: ListFilter = {}): KubeObject[] {
    const type = this.type(resource);
    const match = this.compileFilter(type, filter);
    const snapshot = this.storage.snapshot(type);
    const out: KubeObject[] = [];
    for (const key of snapshot.keys) {
      const stored = snapshot.get(key);
      if (stored !== undefined && match(stored)) out.push(JSON.parse(stored.json) as KubeObject);
    }
    return out;
  }

  /** A predicate for namespace + selectors; throws 400 on a malformed selector. */
  compileFilter(type: ResourceType, filter: ListFilter): (stored: StoredObject) => boolean {
    const namespace = type.namespaced ? (filter.namespace ?? '') : '';
    const labels = parseSelector(() => parseLabelSelector(filter.labelSelector ?? ''));
    const fields = parseSelector(() =>
      parseFieldSelector(filter.fieldSelector ?? '', type.group, type.resource),
    );
    const anyLabels = labels.requirements.length > 0;
    const anyFields = fields.requirements.length > 0;
    return (stored) =>
      (namespace === '' || stored.namespace === namespace) &&
      (!anyLabels || matchesLabels(labels, stored.labels as Record<string, string> | undefined)) &&
      (!anyFields || matchesFields(fields, stored.fields as Record<string, string>));
  }

  // ---- writes ----

  create(resource: ResourceRef, body: unknown, options: WriteOptions = {}): KubeObject {
    const type = this.type(resource);
    const obj = this.#decode(type, body);
    const namespace = this.#resolveNamespace(type, obj, options.namespace);
    const meta = obj.metadata;
    if ((meta.name ?? '') === '' && (meta.generateName ?? '') !== '') {
      meta.name = generateName(meta.generateName ?? '');
    }
    const name = meta.name ?? '';
    if (name === '') {
      throw invalidObject(type, '', [
        {
          field: 'metadata.name',
          reason: 'FieldValueRequired',
          message: 'Required value: name or generateName is required',
        },
      ]);
    }
    if ((meta.resourceVersion ?? '') !== '') {
      throw statusError(
        internalError('resourceVersion should not be set on objects to be created'),
      );
    }
    const nameErrors = validateName(type.nameRule, name);
    if (nameErrors.length > 0) throw invalidObject(type, name, nameErrors);
    if (type.namespaced) this.#requireLiveNamespace(type, namespace, name);
    const key = objectKey(namespace, name);
    if (this.storage.get(type, key) !== undefined) {
      throw statusError(alreadyExists(gr(type), name));
    }
    meta.uid = randomUUID();
    meta.creationTimestamp = formatTimestamp(this.#now());
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    delete meta.selfLink;
    if (type.tracksGeneration) meta.generation = 1;
    else delete meta.generation;
    if (type.custom && type.subresources.includes('status')) delete obj.status;
    const strategy = strategyFor(type);
    strategy.prepareForCreate?.(obj, this.#strategyContext);
    this.#validate(type, obj);
    const canonical = canonicalObject(type, obj);
    if (options.dryRun === true) return canonical;
    const event = this.storage.commit(type, 'ADDED', key, (rv) =>
      this.#stored(type, canonical, rv),
    );
    if (type.resource === 'namespaces' && type.group === '') this.#fillNamespace(name);
    return JSON.parse(event.object.json) as KubeObject;
  }

  /** PUT: replaces the object (or its status); returns it and whether it was created. */
  replace(
    resource: ResourceRef,
    body: unknown,
    options: WriteOptions = {},
  ): { object: KubeObject; created: boolean } {
    const type = this.type(resource);
    const obj = this.#decode(type, body);
    const namespace = this.#resolveNamespace(type, obj, options.namespace);
    const name = obj.metadata.name ?? '';
    if (options.name !== undefined && name !== options.name) {
      throw statusError(
        badRequest(
          `the name of the object (${name}) does not match the name on the URL (${options.name})`,
        ),
      );
    }
    if (name === '') {
      throw invalidObject(type, '', [
        {
          field: 'metadata.name',
          reason: 'FieldValueRequired',
          message: 'Required value: name is required',
        },
      ]);
    }
    const existing = this.storage.get(type, objectKey(namespace, name));
    if (existing === undefined) {
      if (options.subresource === undefined && type.allowCreateOnUpdate) {
        delete obj.metadata.resourceVersion;
        return { object: this.create(type, obj, { ...options, namespace }), created: true };
      }
      throw statusError(notFound(gr(type), name));
    }
    const object = this.#applyUpdate(type, existing, obj, options);
    return { object, created: false };
  }

  update(resource: ResourceRef, body: unknown, options: WriteOptions = {}): KubeObject {
    return this.replace(resource, body, options).object;
  }

  updateStatus(resource: ResourceRef, body: unknown, options: WriteOptions = {}): KubeObject {
    return this.replace(resource, body, { ...options, subresource: 'status' }).object;
  }

  patch(
    resource: ResourceRef,
    name: string,
    namespace: string,
    patchType: PatchType,
    patch: unknown,
    options: WriteOptions = {},
  ): KubeObject {
    const type = this.type(resource);
    const ns = type.namespaced ? namespace : '';
    const existing = this.storage.get(type, objectKey(ns, name));
    if (existing === undefined) throw statusError(notFound(gr(type), name));
    const current = JSON.parse(existing.json) as JsonObject;
    let patched: unknown;
    switch (patchType) {
      case 'merge':
        if (!isJsonObject(patch))
          throw statusError(badRequest('merge patch must be a JSON object'));
        patched = jsonMergePatch(current, patch);
        break;
      case 'json':
        patched = applyJsonPatch(current, patch);
        break;
      case 'strategic':
        if (type.custom) {
          throw statusError(
            withMessage(
              unsupportedMediaType('application/strategic-merge-patch+json'),
              'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml',
            ),
          );
        }
        try {
          patched = strategicMergePatch(current, patch, patchMetaFor(type.group, type.kind));
        } catch (err) {
          if (err instanceof StrategicMergePatchError)
            throw statusError(patchFailed(err.message, err.code));
          throw err;
        }
        break;
    }
    if (!isJsonObject(patched))
      throw statusError(patchFailed('the patch did not produce an object', 422));
    const meta = isJsonObject(patched.metadata) ? patched.metadata : {};
    if (meta.name !== name) {
      throw statusError(
        badRequest(
          `the name of the object (${String(meta.name)}) does not match the name on the URL (${name})`,
        ),
      );
    }
    const obj = this.#decode(type, patched);
    return this.#applyUpdate(type, existing, obj, { ...options, namespace: ns });
  }

  delete(
    resource: ResourceRef,
    name: string,
    namespace = '',
    options: DeleteOptions = {},
  ): DeleteResult {
    const type = this.type(resource);
    const ns = type.namespaced ? namespace : '';
    const key = objectKey(ns, name);
    const existing = this.storage.get(type, key);
    if (existing === undefined) throw statusError(notFound(gr(type), name));
    const obj = JSON.parse(existing.json) as KubeObject;
    checkPreconditions(type, obj, options);
    const dryRun = (options.dryRun ?? []).includes('All');
    if (dryRun) return { object: obj, deleted: true };
    if (type.group === '' && type.resource === 'namespaces')
      return this.#deleteNamespace(type, obj);

    const meta = obj.metadata;
    const grace = gracePeriodFor(type, obj, options);
    const finalizers = meta.finalizers ?? [];
    const now = this.#now();
    if (grace > 0) {
      const pendingGrace = meta.deletionGracePeriodSeconds;
      if (
        meta.deletionTimestamp !== undefined &&
        pendingGrace !== undefined &&
        pendingGrace <= grace
      ) {
        return { object: obj, deleted: false };
      }
      meta.deletionTimestamp = formatTimestamp(now + grace * 1000);
      meta.deletionGracePeriodSeconds = grace;
      return { object: this.#commitModified(type, key, obj), deleted: false };
    }
    if (finalizers.length > 0) {
      if (meta.deletionTimestamp !== undefined && meta.deletionGracePeriodSeconds === 0) {
        return { object: obj, deleted: false };
      }
      meta.deletionTimestamp ??= formatTimestamp(now);
      meta.deletionGracePeriodSeconds = 0;
      return { object: this.#commitModified(type, key, obj), deleted: false };
    }
    return { object: this.#commitDeleted(type, key, obj), deleted: true };
  }

  deleteCollection(
    resource: ResourceRef,
    filter: ListFilter = {},
    options: DeleteOptions = {},
  ): DeleteResult[] {
    const type = this.type(resource);
    const results: DeleteResult[] = [];
    for (const obj of this.list(type, filter)) {
      const meta = obj.metadata;
      try {
        results.push(this.delete(type, meta.name ?? '', meta.namespace ?? '', options));
      } catch (err) {
        // Deleted meanwhile: the collection delete carries on, as the apiserver's does.
        if (!(err instanceof StatusError && err.status.code === 404)) throw err;
      }
    }
    return results;
  }

  // ---- subresources ----

  /** pods/eviction: deletes the pod with the eviction's DeleteOptions (no PodDisruptionBudgets). */
  evictPod(namespace: string, name: string, body: unknown): void {
    const parsed = evictionSchema.safeParse(body);
    if (!parsed.success) throw statusError(badRequest(`invalid Eviction: ${parsed.error.message}`));
    const evictionName = parsed.data.metadata?.name ?? '';
    if (evictionName !== name) {
      throw statusError(badRequest('name in URL does not match name in Eviction object'));
    }
    this.delete('pods', name, namespace, parsed.data.deleteOptions ?? {});
  }

  /** pods/binding: what the scheduler does to place a pod on a node. */
  bindPod(namespace: string, name: string, body: unknown): void {
    const parsed = bindingSchema.safeParse(body);
    if (!parsed.success) throw statusError(badRequest(`invalid Binding: ${parsed.error.message}`));
    const target = parsed.data.target;
    if ((target.kind ?? 'Node') !== 'Node' && target.kind !== '') {
      throw statusError(badRequest('binding target must be a Node'));
    }
    const type = this.type('pods');
    const key = objectKey(namespace, name);
    const existing = this.storage.get(type, key);
    if (existing === undefined) throw statusError(notFound(gr(type), name));
    const pod = JSON.parse(existing.json) as KubeObject;
    const spec = isJsonObject(pod.spec) ? pod.spec : {};
    if (pod.metadata.deletionTimestamp !== undefined) {
      throw statusError(
        conflict({ group: '', resource: 'pods/binding' }, name, 'pod is being deleted'),
      );
    }
    if (typeof spec.nodeName === 'string' && spec.nodeName !== '') {
      throw statusError(
        conflict(
          { group: '', resource: 'pods/binding' },
          name,
          `pod ${name} is already assigned to node ${JSON.stringify(spec.nodeName)}`,
        ),
      );
    }
    spec.nodeName = target.name;
    pod.spec = spec;
    const status = isJsonObject(pod.status) ? pod.status : {};
    const conditions = Array.isArray(status.conditions)
      ? status.conditions.filter(isJsonObject)
      : [];
    const scheduled = {
      type: 'PodScheduled',
      status: 'True',
      lastProbeTime: null,
      lastTransitionTime: formatTimestamp(this.#now()),
    };
    const i = conditions.findIndex((c) => c.type === 'PodScheduled');
    if (i === -1) conditions.push(scheduled);
    else conditions[i] = scheduled;
    status.conditions = conditions;
    pod.status = status;
    this.#commitModified(type, key, pod);
  }

  /** serviceaccounts/token: a TokenRequest answered with a bearer token the double accepts. */
  issueToken(namespace: string, serviceAccount: string, body: unknown): KubeObject {
    const parsed = tokenRequestSchema.safeParse(body);
    if (!parsed.success)
      throw statusError(badRequest(`invalid TokenRequest: ${parsed.error.message}`));
    const sa = this.mustGet('serviceaccounts', serviceAccount, namespace);
    const spec: TokenRequestSpec = parsed.data.spec ?? {};
    const expirationSeconds = spec.expirationSeconds ?? 3600;
    if (expirationSeconds < 600) {
      throw statusError(
        invalidObject(this.type('serviceaccounts'), serviceAccount, [
          {
            field: 'spec.expirationSeconds',
            reason: 'FieldValueInvalid',
            message: `Invalid value: ${expirationSeconds}: may not specify a duration less than 10 minutes`,
          },
        ]).status,
      );
    }
    const audiences =
      spec.audiences !== undefined && spec.audiences !== null && spec.audiences.length > 0
        ? spec.audiences
        : [API_AUDIENCE];
    const nowMs = this.#now();
    const expiresAtMs = nowMs + expirationSeconds * 1000;
    const user = `system:serviceaccount:${namespace}:${serviceAccount}`;
    const token = makeServiceAccountToken({
      aud: audiences,
      exp: Math.floor(expiresAtMs / 1000),
      iat: Math.floor(nowMs / 1000),
      iss: API_AUDIENCE,
      sub: user,
      'kubernetes.io': {
        namespace,
        serviceaccount: { name: serviceAccount, uid: sa.metadata.uid },
        ...(spec.boundObjectRef
          ? {
              [String(spec.boundObjectRef.kind).toLowerCase()]: {
                name: spec.boundObjectRef.name,
                uid: spec.boundObjectRef.uid,
              },
            }
          : {}),
      },
    });
    this.#onTokenIssued?.({
      token,
      user,
      groups: [
        'system:serviceaccounts',
        `system:serviceaccounts:${namespace}`,
        'system:authenticated',
      ],
      expiresAtMs,
    });
    return {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name: serviceAccount, namespace, creationTimestamp: formatTimestamp(nowMs) },
      spec: { ...spec, audiences, expirationSeconds },
      status: { token, expirationTimestamp: formatTimestamp(expiresAtMs) },
    };
  }

  // ---- internals ----

  #decode(type: ResourceType, body: unknown): KubeObject {
    if (!isJsonObject(body))
      throw statusError(badRequest(`the body of a ${type.kind} must be a JSON object`));
    const obj = decodeObject(cloneObject(body));
    if (typeof obj === 'string') throw statusError(badRequest(obj));
    if (
      obj.apiVersion !== undefined &&
      obj.apiVersion !== '' &&
      obj.apiVersion !== type.apiVersion
    ) {
      throw statusError(
        badRequest(
          `the API version in the data (${obj.apiVersion}) does not match the expected API version (${type.apiVersion})`,
        ),
      );
    }
    if (obj.kind !== undefined && obj.kind !== '' && obj.kind !== type.kind) {
      throw statusError(
        badRequest(
          `the kind in the data (${obj.kind}) does not match the expected kind (${type.kind})`,
        ),
      );
    }
    return obj;
  }

  #resolveNamespace(type: ResourceType, obj: KubeObject, urlNamespace: string | undefined): string {
    const bodyNs = obj.metadata.namespace ?? '';
    if (!type.namespaced) {
      if (bodyNs !== '') {
        throw invalidObject(type, obj.metadata.name ?? '', [
          {
            field: 'metadata.namespace',
            reason: 'FieldValueForbidden',
            message: 'Forbidden: not allowed on this type',
          },
        ]);
      }
      return '';
    }
    const url = urlNamespace ?? '';
    if (url !== '' && bodyNs !== '' && url !== bodyNs) {
      throw statusError(
        badRequest(
          'the namespace of the provided object does not match the namespace sent on the request',
        ),
      );
    }
    const ns = url !== '' ? url : bodyNs !== '' ? bodyNs : 'default';
    obj.metadata.namespace = ns;
    return ns;
  }

  #requireLiveNamespace(type: ResourceType, namespace: string, name: string): void {
    const nsType = this.type('namespaces');
    const ns = this.storage.get(nsType, namespace);
    if (ns === undefined) throw statusError(notFound(gr(nsType), namespace));
    const obj = JSON.parse(ns.json) as KubeObject;
    if (obj.metadata.deletionTimestamp !== undefined) {
      throw statusError(
        forbidden(
          gr(type),
          name,
          `unable to create new content in namespace ${namespace} because it is being terminated`,
        ),
      );
    }
  }

  #validate(type: ResourceType, obj: KubeObject): void {
    const errors: FieldError[] = strategyFor(type).validate?.(obj) ?? [];
    if (errors.length > 0) throw invalidObject(type, obj.metadata.name ?? '', errors);
  }

  #applyUpdate(
    type: ResourceType,
    existing: StoredObject,
    obj: KubeObject,
    options: WriteOptions,
  ): KubeObject {
    const prev = JSON.parse(existing.json) as KubeObject;
    const name = existing.name;
    const rv = obj.metadata.resourceVersion ?? '';
    if (rv !== '' && rv !== String(existing.rv)) throw statusError(conflict(gr(type), name));
    const uid = obj.metadata.uid ?? '';
    if (uid !== '' && uid !== prev.metadata.uid) {
      throw statusError(
        conflict(
          gr(type),
          name,
          `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${prev.metadata.uid ?? ''}`,
        ),
      );
    }
    let next: KubeObject;
    if (options.subresource === 'status') {
      next = { ...prev };
      if (obj.status === undefined) delete next.status;
      else next.status = obj.status;
    } else {
      next = obj;
      if (type.subresources.includes('status')) {
        if (prev.status === undefined) delete next.status;
        else next.status = prev.status;
      }
      const meta = next.metadata;
      const prevMeta = prev.metadata;
      for (const field of [
        'uid',
        'creationTimestamp',
        'deletionTimestamp',
        'deletionGracePeriodSeconds',
        'generation',
      ] as const) {
        const value = prevMeta[field];
        if (value === undefined) delete meta[field];
        else (meta as Record<string, unknown>)[field] = value;
      }
      delete meta.selfLink;
      meta.namespace = prevMeta.namespace;
      if (type.namespaced === false) delete meta.namespace;
      if (prevMeta.deletionTimestamp !== undefined) {
        const added = (meta.finalizers ?? []).filter(
          (f) => !(prevMeta.finalizers ?? []).includes(f),
        );
        if (added.length > 0) {
          throw invalidObject(type, name, [
            {
              field: 'metadata.finalizers',
              reason: 'FieldValueForbidden',
              message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`,
            },
          ]);
        }
      }
      strategyFor(type).prepareForUpdate?.(next, prev);
      this.#validate(type, next);
      if (type.tracksGeneration && specChanged(prev, next)) {
        meta.generation = (prevMeta.generation ?? 1) + 1;
      }
    }
    next.metadata.resourceVersion = String(existing.rv);
    const canonical = canonicalObject(type, next);
    if (isDeepStrictEqual(canonical, canonicalObject(type, prev))) return prev;
    if (options.dryRun === true) return canonical;
    const key = existing.key;
    const meta = canonical.metadata;
    if (
      meta.deletionTimestamp !== undefined &&
      (meta.finalizers ?? []).length === 0 &&
      prev.metadata.deletionGracePeriodSeconds === 0
    ) {
      // The generic registry deletes what is stored; the emptied update itself is never written.
      return this.#commitDeleted(type, key, prev);
    }
    return this.#commitModified(type, key, canonical);
  }

  #commitModified(type: ResourceType, key: string, obj: KubeObject): KubeObject {
    const canonical = canonicalObject(type, obj);
    const event = this.storage.commit(type, 'MODIFIED', key, (rv) =>
      this.#stored(type, canonical, rv),
    );
    return JSON.parse(event.object.json) as KubeObject;
  }

  #commitDeleted(type: ResourceType, key: string, obj: KubeObject): KubeObject {
    const canonical = canonicalObject(type, obj);
    const event = this.storage.commit(type, 'DELETED', key, (rv) =>
      this.#stored(type, canonical, rv),
    );
    const namespace = canonical.metadata.namespace ?? '';
    if (type.namespaced && this.#namespaceTerminating(namespace))
      this.#scheduleNamespaceFinalize(namespace);
    return JSON.parse(event.object.json) as KubeObject;
  }

  #stored(type: ResourceType, obj: KubeObject, rv: number): StoredObject {
    obj.metadata.resourceVersion = String(rv);
    const namespace = type.namespaced ? (obj.metadata.namespace ?? '') : '';
    const name = obj.metadata.name ?? '';
    return {
      key: objectKey(namespace, name),
      namespace,
      name,
      rv,
      json: JSON.stringify(obj),
      labels: obj.metadata.labels,
      fields: fieldsOf(type.group, type.resource, obj),
    };
  }

  #deleteNamespace(type: ResourceType, ns: KubeObject): DeleteResult {
    const name = ns.metadata.name ?? '';
    if (IMMORTAL_NAMESPACES.has(name)) {
      throw statusError(forbidden(gr(type), name, 'this namespace may not be deleted'));
    }
    if (ns.metadata.deletionTimestamp !== undefined) return { object: ns, deleted: false };
    ns.metadata.deletionTimestamp = formatTimestamp(this.#now());
    ns.metadata.deletionGracePeriodSeconds = 0;
    ns.status = { ...(isJsonObject(ns.status) ? ns.status : {}), phase: 'Terminating' };
    const object = this.#commitModified(type, name, ns);
    this.#scheduleNamespaceFinalize(name);
    return { object, deleted: false };
  }

  #namespaceTerminating(namespace: string): boolean {
    const ns = this.get('namespaces', namespace);
    return ns !== undefined && ns.metadata.deletionTimestamp !== undefined;
  }

  /** The namespace controller: empties a terminating namespace, then removes it. */
  #scheduleNamespaceFinalize(namespace: string): void {
    if (this.#finalizingNamespaces.has(namespace)) return;
    this.#finalizingNamespaces.add(namespace);
    setImmediate(() => {
      this.#finalizingNamespaces.delete(namespace);
      this.#finalizeNamespace(namespace);
    });
  }

  #finalizeNamespace(namespace: string): void {
    const nsType = this.type('namespaces');
    if (!this.#namespaceTerminating(namespace)) return;
    let remaining = 0;
    for (const type of this.resources.all()) {
      if (!type.namespaced) continue;
      for (const obj of this.list(type, { namespace })) {
        const result = this.delete(type, obj.metadata.name ?? '', namespace, {
          gracePeriodSeconds: 0,
        });
        if (!result.deleted) remaining++;
      }
    }
    if (remaining > 0) return;
    const stored = this.storage.get(nsType, namespace);
    if (stored === undefined) return;
    const ns = JSON.parse(stored.json) as KubeObject;
    if ((ns.metadata.finalizers ?? []).length > 0) return;
    if (isJsonObject(ns.spec)) ns.spec.finalizers = [];
    this.#commitDeleted(nsType, namespace, ns);
  }

  /** What the serviceaccounts and root-ca-cert-publisher controllers put in a new namespace. */
  #fillNamespace(namespace: string): void {
    if (!this.#namespaceControllers || this.#namespaceTerminating(namespace)) return;
    if (this.get('serviceaccounts', 'default', namespace) === undefined) {
      this.create('serviceaccounts', { metadata: { name: 'default', namespace } });
    }
    if (
      this.#rootCA !== undefined &&
      this.get('configmaps', 'kube-root-ca.crt', namespace) === undefined
    ) {
      this.create('configmaps', {
        metadata: {
          name: 'kube-root-ca.crt',
          namespace,
          annotations: {
            'kubernetes.io/description':
              'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.',
          },
        },
        data: { 'ca.crt': this.#rootCA },
      });
    }
  }
}

function parseSelector<T extends LabelSelector | FieldSelector>(parse: () => T | SelectorError): T {
  const result = parse();
  if (result instanceof SelectorError) throw statusError(badRequest(result.message));
  return result;
}

function withMessage(status: KubeStatus, message: string): KubeStatus {
  return { ...status, message };
}

/** The apiserver's answer to a patch that cannot be applied. */
function patchFailed(message: string, code: 400 | 422): KubeStatus {
  if (code === 400) return badRequest(message);
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'the server rejected our request due to an error in our request',
    reason: 'Invalid',
    details: { causes: [{ message }] },
    code: 422,
  };
}

function applyJsonPatch(current: JsonObject, patch: unknown): unknown {
  if (!Array.isArray(patch)) {
    throw statusError(
      badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch'),
    );
  }
  try {
    return fastJsonPatch.applyPatch(current, patch as Operation[], true, false).newDocument;
  } catch (err) {
    throw statusError(
      patchFailed(err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err), 422),
    );
  }
}

function checkPreconditions(type: ResourceType, obj: KubeObject, options: DeleteOptions): void {
  const pre = options.preconditions;
  const name = obj.metadata.name ?? '';
  if (pre?.uid !== undefined && pre.uid !== null && pre.uid !== obj.metadata.uid) {
    throw statusError(
      conflict(
        gr(type),
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${obj.metadata.uid ?? ''}`,
      ),
    );
  }
  if (
    pre?.resourceVersion !== undefined &&
    pre.resourceVersion !== null &&
    pre.resourceVersion !== obj.metadata.resourceVersion
  ) {
    throw statusError(
      conflict(
        gr(type),
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${obj.metadata.resourceVersion ?? ''}`,
      ),
    );
  }
}

/**
 * Seconds a deletion waits: only pods bound to a node and not finished get a
 * grace period (their kubelet finishes the deletion); everything else goes now.
 */
function gracePeriodFor(type: ResourceType, obj: KubeObject, options: DeleteOptions): number {
  if (!(type.group === '' && type.resource === 'pods')) return 0;
  const spec = isJsonObject(obj.spec) ? obj.spec : {};
  const status = isJsonObject(obj.status) ? obj.status : {};
  if (typeof spec.nodeName !== 'string' || spec.nodeName === '') return 0;
  if (status.phase === 'Succeeded' || status.phase === 'Failed') return 0;
  const requested = options.gracePeriodSeconds;
  if (requested !== undefined && requested !== null) return Math.max(0, requested);
  const fromSpec = spec.terminationGracePeriodSeconds;
  return typeof fromSpec === 'number' ? fromSpec : 30;
}

function specChanged(prev: KubeObject, next: KubeObject): boolean {
  const strip = (o: KubeObject): JsonObject => {
    const rest: JsonObject = { ...o };
    delete rest.metadata;
    delete rest.status;
    delete rest.kind;
    delete rest.apiVersion;
    return rest;
  };
  return !isDeepStrictEqual(strip(prev), strip(next));
}

/** kind, apiVersion, metadata (Go field order), the rest, status last: as Go encodes objects. */
export function canonicalObject(type: ResourceType, obj: KubeObject): KubeObject {
  const meta: ObjectMeta = {};
  for (const key of META_ORDER) if (obj.metadata[key] !== undefined) meta[key] = obj.metadata[key];
  for (const [key, value] of Object.entries(obj.metadata)) {
    if (!META_ORDER.includes(key) && value !== undefined) meta[key] = value;
  }
  if (meta.labels !== undefined && Object.keys(meta.labels).length === 0) delete meta.labels;
  if (meta.annotations !== undefined && Object.keys(meta.annotations).length === 0)
    delete meta.annotations;
  if (meta.finalizers !== undefined && meta.finalizers.length === 0) delete meta.finalizers;
  const out: KubeObject = { kind: type.kind, apiVersion: type.apiVersion, metadata: meta };
  for (const [key, value] of Object.entries(obj)) {
    if (key === 'kind' || key === 'apiVersion' || key === 'metadata' || key === 'status') continue;
    if (value !== undefined) out[key] = value;
  }
  if (obj.status !== undefined) out.status = obj.status;
  return out;
}

const evictionSchema = z.looseObject({
  metadata: z
    .looseObject({ name: z.string().optional(), namespace: z.string().optional() })
    .optional(),
  deleteOptions: deleteOptionsSchema.nullable().optional(),
});

const bindingSchema = z.looseObject({
  metadata: z.looseObject({ name: z.string().optional() }).optional(),
  target: z.looseObject({ kind: z.string().optional(), name: z.string().min(1) }),
});

function base64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** Shaped like a real service-account JWT; the signature is random (nothing verifies it but the double). */
function makeServiceAccountToken(claims: JsonObject): string {
  const header = base64url(JSON.stringify({ alg: 'RS256', kid: 'edgebox-fake' }));
  return `${header}.${base64url(JSON.stringify(claims))}.${base64url(randomBytes(32))}`;
}
