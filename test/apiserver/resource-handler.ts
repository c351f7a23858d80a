import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestInfo } from '../../src/kube/request-info.ts';
import {
  badRequest,
  successStatus,
  type KubeStatus,
  unsupportedMediaType,
} from '../../src/kube/status.ts';
import type { FaultInjector, FaultRequest } from './faults.ts';
import {
  decodeBody,
  decodeJsonBody,
  mediaType,
  negotiate,
  readBody,
  writeJson,
  writeJsonText,
  writeStatusObject,
} from './http-io.ts';
import { parseListOptions, parseResourceVersion } from './list-options.ts';
import { ListError, readListPage, type ListPage } from './list-pages.ts';
import { StatusError, type KubeObject } from './object-meta.ts';
import {
  deleteOptionsSchema,
  PATCH_CONTENT_TYPES,
  type DeleteOptions,
  type ObjectRegistry,
} from './object-registry.ts';
import type { ResourceType } from './resource-types.ts';
import { buildTable, type IncludeObject } from './table-printer.ts';
import type { StoredObject } from './versioned-storage.ts';
import { WatchStream, type WatchStart } from './watch-stream.ts';

/**
 * The REST layer for resource requests: maps a RequestInfo (verb, resource,
 * namespace, name, subresource) onto the registry, and encodes the answer as
 * kube-apiserver does (status codes, list envelopes, Tables, watch streams).
 */

export interface ResourceHandlerContext {
  registry: ObjectRegistry;
  faults: FaultInjector;
  now: () => number;
  bookmarkIntervalMs: number;
  /** Lifetime of a watch without timeoutSeconds. */
  watchTimeoutMs: () => number;
  /** This response is to be cut mid-body (fault injection). */
  truncate: boolean;
  faultRequest: FaultRequest;
  /** Records the status once the response head is out (watches stay open). */
  answered: (status: number) => void;
}

const NOT_FOUND: KubeStatus = {
  kind: 'Status',
  apiVersion: 'v1',
  metadata: {},
  status: 'Failure',
  message: 'the server could not find the requested resource',
  reason: 'NotFound',
  details: {},
  code: 404,
};

const METHOD_NOT_ALLOWED: KubeStatus = {
  kind: 'Status',
  apiVersion: 'v1',
  metadata: {},
  status: 'Failure',
  message: 'the server does not allow this method on the requested resource',
  reason: 'MethodNotAllowed',
  details: {},
  code: 405,
};

/** A Status body for successful subresource creates (eviction, binding): 201. */
function created(): KubeStatus {
  return { ...successStatus(), code: 201 };
}

function fail(status: KubeStatus): never {
  throw new StatusError(status);
}

export async function handleResourceRequest(
  info: RequestInfo,
  req: IncomingMessage,
  res: ServerResponse,
  query: URLSearchParams,
  ctx: ResourceHandlerContext,
): Promise<void> {
  const registry = ctx.registry;
  const type = registry.resources.lookup(info.apiGroup, info.apiVersion, info.resource);
  if (type === undefined) fail(NOT_FOUND);
  const isNamespaceResource = type.group === '' && type.resource === 'namespaces';
  if (!type.namespaced && info.namespace !== '' && !isNamespaceResource) fail(NOT_FOUND);
  const namespace = type.namespaced ? info.namespace : '';
  const { name, subresource, verb } = info;
  if (subresource !== '' && !(type.subresources as readonly string[]).includes(subresource))
    fail(NOT_FOUND);
  if (type.namespaced && namespace === '' && name !== '') fail(NOT_FOUND);
  const dryRun = query.getAll('dryRun').includes('All');
  const accept = negotiate(req.headers.accept);
  if (!accept.acceptable) {
    fail({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf`,
      reason: 'NotAcceptable',
      code: 406,
    });
  }
  const includeObject = (query.get('includeObject') ?? 'Metadata') as IncludeObject;
  // Item verbs on a collection URL are not routed by the apiserver.
  if (name === '' && (verb === 'update' || verb === 'patch' || verb === 'delete')) {
    fail(METHOD_NOT_ALLOWED);
  }

  switch (verb) {
    case 'get': {
      if (subresource !== '' && subresource !== 'status') fail(METHOD_NOT_ALLOWED);
      const obj = registry.mustGet(type, name, namespace);
      if (accept.table) {
        writeJson(
          res,
          200,
          buildTable(type, [obj], {
            includeObject,
            withColumns: true,
            resourceVersion: obj.metadata.resourceVersion,
            now: ctx.now(),
          }),
        );
        return;
      }
      sendText(res, 200, [JSON.stringify(obj)], ctx.truncate);
      return;
    }
    case 'list':
      await handleList(type, namespace, query, res, ctx, accept.table, includeObject);
      return;
    case 'watch':
      handleWatch(type, namespace, name, query, res, ctx, accept.table, includeObject);
      return;
    case 'create': {
      if (type.namespaced && namespace === '') fail(METHOD_NOT_ALLOWED);
      const body = decodeBody(await readBody(req), req.headers['content-type']);
      if (subresource === '') {
        if (name !== '') fail(METHOD_NOT_ALLOWED);
        writeJson(res, 201, registry.create(type, body, { namespace, dryRun }));
        return;
      }
      if (subresource === 'eviction') {
        registry.evictPod(namespace, name, body);
        writeJson(res, 201, created());
        return;
      }
      if (subresource === 'binding') {
        registry.bindPod(namespace, name, body);
        writeJson(res, 201, created());
        return;
      }
      if (subresource === 'token') {
        writeJson(res, 201, registry.issueToken(namespace, name, body));
        return;
      }
      fail(METHOD_NOT_ALLOWED);
      break;
    }
    case 'update': {
      if (subresource !== '' && subresource !== 'status') fail(METHOD_NOT_ALLOWED);
      const body = decodeBody(await readBody(req), req.headers['content-type']);
      const result = registry.replace(type, body, {
        namespace,
        name,
        dryRun,
        ...(subresource === 'status' ? { subresource: 'status' as const } : {}),
      });
      writeJson(res, result.created ? 201 : 200, result.object);
      return;
    }
    case 'patch': {
      if (subresource !== '' && subresource !== 'status') fail(METHOD_NOT_ALLOWED);
      const contentType = mediaType(req.headers['content-type']);
      const patchType = PATCH_CONTENT_TYPES[contentType];
      if (patchType === undefined) {
        const status = unsupportedMediaType(contentType);
        status.message = `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`;
        fail(status);
      }
      const patch = decodeJsonBody(await readBody(req));
      const obj = registry.patch(type, name, namespace, patchType, patch, {
        dryRun,
        ...(subresource === 'status' ? { subresource: 'status' as const } : {}),
      });
      writeJson(res, 200, obj);
      return;
    }
    case 'delete': {
      if (subresource !== '') fail(METHOD_NOT_ALLOWED);
      const options = await deleteOptionsOf(req, query);
      const result = registry.delete(type, name, namespace, options);
      if (result.deleted && !type.returnDeletedObject) {
        writeJson(res, 200, deletedStatus(type, result.object));
      } else {
        writeJson(res, 200, result.object);
      }
      return;
    }
    case 'deletecollection': {
      if (subresource !== '' || (type.namespaced && namespace === '')) fail(METHOD_NOT_ALLOWED);
      const listOptions = parseListOptions(query, false);
      if ('kind' in listOptions) fail(listOptions);
      const options = await deleteOptionsOf(req, query);
      const results = registry.deleteCollection(
        type,
        {
          namespace,
          labelSelector: listOptions.labelSelector,
          fieldSelector: listOptions.fieldSelector,
        },
        options,
      );
      writeJson(res, 200, {
        kind: type.listKind,
        apiVersion: type.apiVersion,
        metadata: { resourceVersion: registry.resourceVersion },
        items: results.map((r) => r.object),
      });
      return;
    }
    default:
      fail(METHOD_NOT_ALLOWED);
  }
}

function deletedStatus(type: ResourceType, obj: KubeObject): KubeStatus {
  const details: NonNullable<KubeStatus['details']> = { name: obj.metadata.name ?? '' };
  if (type.group !== '') details.group = type.group;
  details.kind = type.resource;
  if (obj.metadata.uid !== undefined) details.uid = obj.metadata.uid;
  return successStatus(details);
}

async function deleteOptionsOf(
  req: IncomingMessage,
  query: URLSearchParams,
): Promise<DeleteOptions> {
  const raw = await readBody(req);
  let options: DeleteOptions = {};
  if (raw.length > 0) {
    const parsed = deleteOptionsSchema.safeParse(decodeBody(raw, req.headers['content-type']));
    if (!parsed.success) fail(badRequest(`invalid DeleteOptions: ${parsed.error.message}`));
    options = parsed.data;
  }
  const grace = query.get('gracePeriodSeconds');
  if (grace !== null && grace !== '') {
    if (!/^-?\d+$/.test(grace))
      fail(badRequest(`invalid gracePeriodSeconds: ${JSON.stringify(grace)}`));
    options.gracePeriodSeconds = Number(grace);
  }
  const propagation = query.get('propagationPolicy');
  if (propagation !== null) options.propagationPolicy = propagation;
  const dryRun = query.getAll('dryRun');
  if (dryRun.length > 0) options.dryRun = dryRun;
  return options;
}

function itemPrefix(type: ResourceType): string {
  return `{"kind":${JSON.stringify(type.kind)},"apiVersion":${JSON.stringify(type.apiVersion)},`;
}

async function handleList(
  type: ResourceType,
  namespace: string,
  query: URLSearchParams,
  res: ServerResponse,
  ctx: ResourceHandlerContext,
  table: boolean,
  includeObject: IncludeObject,
): Promise<void> {
  const options = parseListOptions(query, false);
  if ('kind' in options) fail(options);
  const match = ctx.registry.compileFilter(type, {
    namespace,
    labelSelector: options.labelSelector,
    fieldSelector: options.fieldSelector,
  });
  let page: ListPage;
  try {
    page = await readListPage(ctx.registry.storage, {
      type,
      namespace,
      options,
      match,
      unfiltered: options.labelSelector === '' && options.fieldSelector === '',
    });
  } catch (err) {
    if (err instanceof ListError) {
      writeStatusObject(res, err.status);
      return;
    }
    throw err;
  }
  if (table) {
    const objects = page.items.map((s) => JSON.parse(s.json) as KubeObject);
    writeJson(
      res,
      200,
      buildTable(type, objects, {
        includeObject,
        withColumns: true,
        resourceVersion: String(page.rv),
        ...(page.continueToken === undefined ? {} : { continueToken: page.continueToken }),
        ...(page.remainingItemCount === undefined
          ? {}
          : { remainingItemCount: page.remainingItemCount }),
        now: ctx.now(),
      }),
    );
    return;
  }
  let meta = `{"resourceVersion":"${page.rv}"`;
  if (page.continueToken !== undefined) meta += `,"continue":${JSON.stringify(page.continueToken)}`;
  if (page.remainingItemCount !== undefined)
    meta += `,"remainingItemCount":${page.remainingItemCount}`;
  meta += '}';
  const parts: string[] = [
    `{"kind":${JSON.stringify(type.listKind)},"apiVersion":${JSON.stringify(type.apiVersion)},"metadata":${meta},"items":[`,
  ];
  // Built-in lists carry items without kind/apiVersion (typed lists drop them); custom resources keep them.
  const prefix = type.custom ? '' : itemPrefix(type);
  page.items.forEach((stored: StoredObject, i: number) => {
    const json =
      prefix !== '' && stored.json.startsWith(prefix)
        ? `{${stored.json.slice(prefix.length)}`
        : stored.json;
    parts.push(i === 0 ? json : `,${json}`);
  });
  parts.push(']}');
  sendText(res, 200, parts, ctx.truncate);
}

const CHUNK_CHARS = 1 << 20;

/** Writes JSON text; large bodies go out chunked. `truncate` sends half and drops the connection. */
function sendText(res: ServerResponse, code: number, parts: string[], truncate: boolean): void {
  const total = parts.reduce((n, p) => n + p.length, 0);
  if (truncate) {
    res.writeHead(code, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
    });
    const text = parts.join('');
    res.write(text.slice(0, Math.max(1, Math.floor(text.length / 2))), () => {
      res.socket?.destroy();
    });
    return;
  }
  if (total <= CHUNK_CHARS) {
    writeJsonText(res, code, parts.join(''));
    return;
  }
  res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
  let batch: string[] = [];
  let size = 0;
  for (const p of parts) {
    batch.push(p);
    size += p.length;
    if (size >= CHUNK_CHARS) {
      res.write(batch.join(''));
      batch = [];
      size = 0;
    }
  }
  res.end(batch.join(''));
}

function handleWatch(
  type: ResourceType,
  namespace: string,
  name: string,
  query: URLSearchParams,
  res: ServerResponse,
  ctx: ResourceHandlerContext,
  table: boolean,
  includeObject: IncludeObject,
): void {
  const options = parseListOptions(query, true);
  if ('kind' in options) fail(options);
  const filter = ctx.registry.compileFilter(type, {
    namespace,
    labelSelector: options.labelSelector,
    fieldSelector: options.fieldSelector,
  });
  const match = name === '' ? filter : (s: StoredObject) => s.name === name && filter(s);
  const rv = parseResourceVersion(options.resourceVersion);
  if (typeof rv === 'object') fail(rv);
  let start: WatchStart;
  if (options.sendInitialEvents === true) start = { kind: 'initial-state', endBookmark: true };
  else if (rv === undefined || rv === 0) {
    start =
      options.sendInitialEvents === false
        ? { kind: 'now' }
        : { kind: 'initial-state', endBookmark: false };
  } else start = { kind: 'from', rv };

  if (ctx.truncate) {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    ctx.answered(200);
    res.write('{"type":"ADDED","object":{"kind":', () => res.socket?.destroy());
    return;
  }
  let untrack: () => void = () => undefined;
  const stream = new WatchStream(
    res,
    ctx.registry.storage,
    {
      type,
      start,
      match,
      allowBookmarks: options.allowWatchBookmarks,
      bookmarkIntervalMs: ctx.bookmarkIntervalMs,
      timeoutMs:
        options.timeoutSeconds !== undefined ? options.timeoutSeconds * 1000 : ctx.watchTimeoutMs(),
      table: table ? { includeObject, now: ctx.now } : undefined,
    },
    () => untrack(),
  );
  untrack = ctx.faults.trackWatch({ request: ctx.faultRequest, cut: () => stream.cut() });
  stream.start();
  ctx.answered(200);
}
