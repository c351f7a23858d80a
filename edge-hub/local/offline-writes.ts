import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  alreadyExists,
  badRequest,
  conflict,
  notFound,
  qualifiedResource,
  serviceUnavailable,
  type GroupResource,
  type KubeStatus,
} from '../../src/kube/status.ts';
import { formatTime } from '../../src/kube/meta-time.ts';
import type { Logger } from '../../src/log.ts';
import { isNodeLease, isNodeStatus, isTokenRequest } from '../cache/cache-manager.ts';
import type { HubRequest } from '../hub-request.ts';
import { resourceOf, type LocalMutation, type OfflineCache } from '../cache/offline-cache.ts';
import { writeCachedJson, writeCachedStatus } from './cached-response.ts';
import { applyPatch, patchTypeOf } from './object-patch.ts';

export interface OfflineWriteDeps {
  cache: OfflineCache;
  log: Logger;
  nodeName: string;
  clock: () => number;
}

type JsonObject = Record<string, unknown>;

interface ObjectMetaLike {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  [key: string]: unknown;
}

function metaOf(obj: unknown): ObjectMetaLike {
  const m = (obj as { metadata?: unknown } | null)?.metadata;
  return typeof m === 'object' && m !== null ? (m as ObjectMetaLike) : {};
}

function isJsonBody(req: IncomingMessage): boolean {
  const type = req.headers['content-type'] ?? 'application/json';
  return /^application\/json\b/i.test(type.trim());
}

function isProtobufBody(req: IncomingMessage): boolean {
  return /^application\/vnd\.kubernetes\.protobuf\b/i.test(req.headers['content-type'] ?? '');
}

/** What a Lease write carries: the Lease, why it cannot be read, or undefined (another media type). */
type LeaseBody = JsonObject | Error | undefined;

/**
 * The Lease a create or update carries: JSON, or protobuf as kubelet sends
 * it; undefined for any other media type (the write is then refused).
 */
async function leaseOf(req: IncomingMessage, hubReq: HubRequest): Promise<LeaseBody> {
  if (isJsonBody(req)) return parseObject(hubReq.body);
  if (isProtobufBody(req)) {
    // Loaded at the first protobuf renewal offline: a hub that never needs the decoder never carries it.
    const { decodeLeaseBody } = await import('./lease-protobuf.ts');
    return decodeLeaseBody(hubReq.body ?? Buffer.alloc(0));
  }
  return undefined;
}

function nameOf(body: LeaseBody): string {
  return body === undefined || body instanceof Error ? '' : (metaOf(body).name ?? '');
}

function parseObject(body: Buffer | undefined): JsonObject | Error {
  try {
    const value: unknown = JSON.parse((body ?? Buffer.alloc(0)).toString('utf8'));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return new Error('the request body is not a JSON object');
    }
    return value as JsonObject;
  } catch (err) {
    return new Error(`the request body is not valid JSON: ${String(err)}`);
  }
}

export function offlineRefusal(hubReq: HubRequest): KubeStatus {
  const info = hubReq.info;
  const what =
    info.name === ''
      ? qualifiedResource(resourceOf(hubReq))
      : `${qualifiedResource(resourceOf(hubReq))} "${info.name}"`;
  const sub = info.subresource === '' ? '' : ` (${info.subresource})`;
  return serviceUnavailable(
    `the node is offline: the control plane is unreachable, so this ${info.verb} of ${what}${sub} was not applied; edgebox answers reads from its cache until the connection returns`,
  );
}

/**
 * Writes while offline. kubelet's heartbeats (its node Lease, its node status)
 * are acknowledged locally as the apiserver would answer them, with a new
 * resourceVersion, and stored but never queued for upstream. TokenRequests get
 * the last unexpired token this component received. A create of an object the
 * component already has cached is answered 409 AlreadyExists (true, and
 * nothing is written). Everything else: 503 saying nothing was applied.
 */
export async function answerWrite(
  deps: OfflineWriteDeps,
  req: IncomingMessage,
  res: ServerResponse,
  hubReq: HubRequest,
): Promise<void> {
  const info = hubReq.info;
  if (isTokenRequest(info)) return answerTokenRequest(deps, res, hubReq);
  if (isNodeLease(info)) {
    const body =
      info.verb === 'create' || info.verb === 'update' ? await leaseOf(req, hubReq) : undefined;
    const name = info.verb === 'create' ? nameOf(body) : info.name;
    if (name === deps.nodeName && ['create', 'update', 'patch'].includes(info.verb)) {
      return acknowledge(deps, res, hubReq, name, leaseMutation(deps, req, hubReq, body));
    }
  }
  if (isNodeStatus(info) && info.name === deps.nodeName) {
    if (info.verb === 'update' || info.verb === 'patch') {
      return acknowledge(deps, res, hubReq, info.name, nodeStatusMutation(req, hubReq));
    }
  }
  if (info.verb === 'create' && info.subresource === '') {
    const existing = existingCreateTarget(deps, req, hubReq);
    if (existing !== undefined) {
      return writeCachedStatus(res, alreadyExists(groupResource(hubReq), existing));
    }
  }
  writeCachedStatus(res, offlineRefusal(hubReq));
}

function groupResource(hubReq: HubRequest): GroupResource {
  return { group: hubReq.info.apiGroup, resource: hubReq.info.resource };
}

/** The name of the object a create would make, when the component has it cached already. */
function existingCreateTarget(
  deps: OfflineWriteDeps,
  req: IncomingMessage,
  hubReq: HubRequest,
): string | undefined {
  const info = hubReq.info;
  let name: string | undefined;
  if (isJsonBody(req)) {
    const body = parseObject(hubReq.body);
    if (!(body instanceof Error)) name = metaOf(body).name;
  } else if (info.apiGroup === '' && info.resource === 'nodes') {
    name = deps.nodeName; // kubelet registers its own node, in protobuf
  }
  if (name === undefined || name === '') return undefined;
  const raw = deps.cache.cachedObject(hubReq.component, resourceOf(hubReq), info.namespace, name);
  return raw === undefined ? undefined : name;
}

async function acknowledge(
  deps: OfflineWriteDeps,
  res: ServerResponse,
  hubReq: HubRequest,
  name: string,
  mutate: LocalMutation,
): Promise<void> {
  const info = hubReq.info;
  const result = await deps.cache.writeLocal(
    hubReq.component,
    resourceOf(hubReq),
    info.namespace,
    name,
    mutate,
  );
  if ('refusal' in result) return writeCachedStatus(res, result.refusal);
  deps.log.debug(
    { component: hubReq.component, verb: info.verb, resource: info.resource, name },
    'heartbeat acknowledged locally while offline',
  );
  writeCachedJson(res, result.created ? 201 : 200, result.raw);
}

function parseCurrent(current: Buffer): JsonObject {
  return JSON.parse(current.toString('utf8')) as JsonObject;
}

function staleVersion(body: unknown, current: JsonObject): boolean {
  const wanted = metaOf(body).resourceVersion;
  return wanted !== undefined && wanted !== '' && wanted !== metaOf(current).resourceVersion;
}

/** The cached object with the request's patch applied, or what the apiserver would answer. */
function patchedObject(
  req: IncomingMessage,
  hubReq: HubRequest,
  current: JsonObject | undefined,
): { object: JsonObject } | { refusal: KubeStatus } {
  const type = patchTypeOf(req.headers['content-type']);
  if (type === undefined) return { refusal: offlineRefusal(hubReq) };
  const patched = applyPatch(
    current ?? {},
    hubReq.info.apiGroup,
    type,
    hubReq.body ?? Buffer.alloc(0),
  );
  if (patched instanceof Error) return { refusal: badRequest(patched.message) };
  return { object: patched as JsonObject };
}

function leaseMutation(
  deps: OfflineWriteDeps,
  req: IncomingMessage,
  hubReq: HubRequest,
  body: LeaseBody,
): LocalMutation {
  const info = hubReq.info;
  const gr = groupResource(hubReq);
  const identity = {
    kind: 'Lease',
    apiVersion: deps.cache.identity(hubReq.component, resourceOf(hubReq)).apiVersion,
  };
  return (current, newRv) => {
    const now = deps.clock();
    const cur = current === undefined ? undefined : parseCurrent(current);
    if (info.verb === 'create' && cur !== undefined) {
      return { refusal: alreadyExists(gr, deps.nodeName) };
    }
    if (info.verb !== 'create' && cur === undefined) {
      return { refusal: notFound(gr, deps.nodeName) };
    }
    let next: JsonObject;
    if (info.verb === 'patch') {
      const patched = patchedObject(req, hubReq, cur);
      if ('refusal' in patched) return patched;
      next = patched.object;
    } else {
      if (body === undefined) return { refusal: offlineRefusal(hubReq) };
      if (body instanceof Error) return { refusal: badRequest(body.message) };
      if (cur !== undefined && staleVersion(body, cur)) {
        return { refusal: conflict(gr, deps.nodeName) };
      }
      next = body;
    }
    const curMeta = cur === undefined ? {} : metaOf(cur);
    const metadata: ObjectMetaLike = {
      ...metaOf(next),
      name: deps.nodeName,
      namespace: info.namespace,
      uid: curMeta.uid ?? randomUUID(),
      creationTimestamp: curMeta.creationTimestamp ?? formatTime(now),
      resourceVersion: newRv,
    };
    return { object: { ...next, ...identity, metadata } };
  };
}

function nodeStatusMutation(req: IncomingMessage, hubReq: HubRequest): LocalMutation {
  const info = hubReq.info;
  const gr = groupResource(hubReq);
  return (current, newRv) => {
    if (current === undefined) return { refusal: notFound(gr, info.name) };
    const cur = parseCurrent(current);
    let status: unknown;
    if (info.verb === 'patch') {
      const patched = patchedObject(req, hubReq, cur);
      if ('refusal' in patched) return patched;
      status = patched.object.status;
    } else {
      if (!isJsonBody(req)) return { refusal: offlineRefusal(hubReq) };
      const body = parseObject(hubReq.body);
      if (body instanceof Error) return { refusal: badRequest(body.message) };
      if (staleVersion(body, cur)) return { refusal: conflict(gr, info.name) };
      status = body.status;
    }
    // The status subresource changes status only, as the apiserver's node status strategy does.
    return {
      object: { ...cur, status, metadata: { ...metaOf(cur), resourceVersion: newRv } },
    };
  };
}

function answerTokenRequest(deps: OfflineWriteDeps, res: ServerResponse, hubReq: HubRequest): void {
  const info = hubReq.info;
  const record = deps.cache.token(hubReq.component, info.namespace, info.name, hubReq.body);
  if (record instanceof Error) return writeCachedStatus(res, badRequest(record.message));
  const who = `serviceaccount ${info.namespace}/${info.name}`;
  if (record === undefined) {
    return writeCachedStatus(
      res,
      serviceUnavailable(
        `the node is offline and no token for ${who} with this audience and binding was issued to ${hubReq.component} before; the TokenRequest was not applied`,
      ),
    );
  }
  const expires = Date.parse(record.expirationTimestamp);
  if (!Number.isFinite(expires) || expires <= deps.clock()) {
    return writeCachedStatus(
      res,
      serviceUnavailable(
        `the node is offline and the last token for ${who} expired at ${record.expirationTimestamp}; the TokenRequest was not applied`,
      ),
    );
  }
  writeCachedJson(res, 201, record.response);
}
