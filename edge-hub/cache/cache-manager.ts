import type { IncomingHttpHeaders } from 'node:http';
import type { Registry } from 'prom-client';
import type { Logger } from '../../src/log.ts';
import type { RequestInfo } from '../../src/kube/request-info.ts';
import type { HubRequest, ResponseRecorder } from '../hub-request.ts';
import { registerCacheMetrics } from './cache-metrics.ts';
import { CacheStore } from './cache-store.ts';
import { objectId, resourceRefOf } from './keys.ts';
import { ListPages, listRecorder } from './list-recorder.ts';
import { OfflineCache } from './offline-cache.ts';
import {
  notFoundRecorder,
  objectRecorder,
  tokenRecorder,
  type RecorderContext,
} from './object-recorders.ts';
import { requestScope } from './scope.ts';
import type { CacheLoss } from './store-records.ts';
import { tokenStoreKey } from './token-key.ts';
import { watchRecorder } from './watch-recorder.ts';
import { qualifiedResource } from '../../src/kube/status.ts';

export interface CacheSummaryRow {
  component: string;
  /** e.g. 'pods', 'leases.coordination.k8s.io' */
  resource: string;
  objects: number;
  /** ISO time of the last list/watch/get applied */
  lastSync: string | null;
}

/** Never cached, whatever the verb: answers about credentials and permissions. */
const NEVER_CACHED = new Set([
  'tokenreviews',
  'subjectaccessreviews',
  'localsubjectaccessreviews',
  'selfsubjectaccessreviews',
  'selfsubjectrulesreviews',
  'selfsubjectreviews',
  'certificatesigningrequests',
]);

export const NODE_LEASE_NAMESPACE = 'kube-node-lease';

export function isNodeLease(info: RequestInfo): boolean {
  return (
    info.apiGroup === 'coordination.k8s.io' &&
    info.resource === 'leases' &&
    info.namespace === NODE_LEASE_NAMESPACE &&
    info.subresource === ''
  );
}

export function isNodeStatus(info: RequestInfo): boolean {
  return info.apiGroup === '' && info.resource === 'nodes' && info.subresource === 'status';
}

export function isTokenRequest(info: RequestInfo): boolean {
  return (
    info.apiGroup === '' &&
    info.resource === 'serviceaccounts' &&
    info.subresource === 'token' &&
    info.verb === 'create'
  );
}

/**
 * kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io,...`: rows
 * for display, not objects. Recorded, the hub would ask upstream for plain
 * JSON and kubectl would lose its columns.
 */
function asksForTable(accept: string | undefined): boolean {
  return accept !== undefined && /;\s*as=Table\b/i.test(accept);
}

function isJson(headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type'];
  return typeof type === 'string' && /^application\/json\b/i.test(type.trim());
}

/**
 * Decides what the hub records and turns upstream answers into store writes.
 * The single owner of the CacheStore; local/ reads the cache only through
 * `offline` (offline-cache.ts), never the store.
 */
export class CacheManager {
  /** The store itself, for cache/ and its tests. */
  readonly store: CacheStore;
  /** What offline answers are read from. */
  readonly offline: OfflineCache;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly nodeName: string | undefined;
  private readonly pages = new ListPages();
  private readonly streamedListBytes: number | undefined;

  private constructor(
    store: CacheStore,
    log: Logger,
    clock: () => number,
    nodeName?: string,
    streamedListBytes?: number,
  ) {
    this.store = store;
    this.offline = new OfflineCache(store);
    this.log = log;
    this.clock = clock;
    this.nodeName = nodeName;
    this.streamedListBytes = streamedListBytes;
  }

  static async open(opts: {
    dataDir: string;
    log: Logger;
    registry?: Registry;
    clock?: () => number;
    /** when given, only this node's Lease and status writes are recorded */
    nodeName?: string;
    /** see CacheStore.open */
    bookkeepingFlushMs?: number;
    /** see CacheStore.open */
    stagedChunkBytes?: number;
    /** LISTs larger than this are parsed and staged as they stream (list-recorder.ts) */
    streamedListBytes?: number;
  }): Promise<CacheManager> {
    const clock = opts.clock ?? Date.now;
    const store = await CacheStore.open({
      dataDir: opts.dataDir,
      log: opts.log,
      clock,
      bookkeepingFlushMs: opts.bookkeepingFlushMs,
      stagedChunkBytes: opts.stagedChunkBytes,
    });
    const manager = new CacheManager(store, opts.log, clock, opts.nodeName, opts.streamedListBytes);
    if (opts.registry !== undefined) {
      store.setMetrics(registerCacheMetrics(opts.registry, () => manager.objectCounts()));
    }
    return manager;
  }

  private *objectCounts() {
    for (const e of this.store.allEntries()) {
      yield { component: e.component, resource: qualifiedResource(e.ref), objects: e.objects };
    }
  }

  /**
   * get/list/watch of any resource (custom ones included), `status` the only
   * cached subresource; never reviews or CSRs, never Tables. Also the writes
   * the hub must remember: the node's own Lease, node status, and TokenRequests.
   */
  isCacheable(req: HubRequest): boolean {
    const info = req.info;
    if (!info.isResourceRequest || info.resource === '') return false;
    if (NEVER_CACHED.has(info.resource)) return false;
    if (asksForTable(req.accept)) return false;
    switch (info.verb) {
      case 'get':
        return info.name !== '' && (info.subresource === '' || info.subresource === 'status');
      case 'list':
      case 'watch':
        return info.subresource === '';
      case 'create':
        return isNodeLease(info) || isTokenRequest(info);
      case 'update':
      case 'patch':
        return (
          (isNodeLease(info) || isNodeStatus(info)) &&
          (this.nodeName === undefined || info.name === this.nodeName)
        );
      default:
        return false;
    }
  }

  /**
   * A sink for the upstream response body, or undefined if this response is
   * not recorded (non-2xx, not JSON, ...).
   */
  recorder(
    req: HubRequest,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): ResponseRecorder | undefined {
    if (!this.isCacheable(req)) return undefined;
    const info = req.info;
    const ctx: RecorderContext = {
      store: this.store,
      log: this.log,
      component: req.component,
      ref: resourceRefOf(info),
      contentEncoding: headers['content-encoding'],
      contentLength: contentLengthOf(headers),
      clock: this.clock,
    };
    if (info.verb === 'get' && statusCode === 404) {
      return notFoundRecorder(ctx, info.namespace, info.name);
    }
    if (statusCode < 200 || statusCode >= 300 || !isJson(headers)) return undefined;
    const what = () => `${info.verb} ${qualifiedResource(ctx.ref)} ${info.namespace}/${info.name}`;
    switch (info.verb) {
      case 'list':
      case 'watch': {
        const scope = requestScope(req);
        if (scope instanceof Error) return undefined;
        return info.verb === 'list'
          ? listRecorder(
              ctx,
              scope,
              req.query.get('continue') ?? '',
              this.pages,
              this.streamedListBytes,
            )
          : watchRecorder(ctx, scope, {
              initialEvents: req.query.get('sendInitialEvents') === 'true',
              streamedListBytes: this.streamedListBytes,
            });
      }
      case 'create':
        if (isTokenRequest(info)) {
          const key = tokenStoreKey(req.component, info.namespace, info.name, req.body);
          return key instanceof Error ? undefined : tokenRecorder(ctx, key);
        }
        return objectRecorder(ctx, what);
      default:
        return objectRecorder(
          ctx,
          what,
          info.name === '' ? undefined : objectId(info.namespace, info.name),
        );
    }
  }

  /** Set when the store was unusable at start and moved aside: the node lost its cache. */
  loss(): CacheLoss | undefined {
    return this.store.loss();
  }

  /** What is cached, per component and resource, for `edgebox hub status`. */
  summary(): Promise<CacheSummaryRow[]> {
    const rows = new Map<string, CacheSummaryRow>();
    for (const e of this.store.allEntries()) {
      if (e.objects === 0 && e.lastSync === null) continue;
      const resource = qualifiedResource(e.ref);
      const key = `${e.component}\u0000${resource}`;
      const row = rows.get(key);
      if (row === undefined) {
        rows.set(key, {
          component: e.component,
          resource,
          objects: e.objects,
          lastSync: e.lastSync,
        });
      } else {
        // Two versions of one resource hold the same objects: count them once.
        row.objects = Math.max(row.objects, e.objects);
        if (e.lastSync !== null && (row.lastSync === null || e.lastSync > row.lastSync)) {
          row.lastSync = e.lastSync;
        }
      }
    }
    const out = [...rows.values()].sort(
      (a, b) => a.component.localeCompare(b.component) || a.resource.localeCompare(b.resource),
    );
    return Promise.resolve(out);
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

/** The body's announced length, to size its buffer once (a chunked answer has none). */
function contentLengthOf(headers: IncomingHttpHeaders): number | undefined {
  const value = headers['content-length'];
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}
