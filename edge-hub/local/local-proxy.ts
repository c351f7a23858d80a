import type { IncomingMessage, ServerResponse } from 'node:http';
import { internalError, notFound, serviceUnavailable } from '../../src/kube/status.ts';
import type { Logger } from '../../src/log.ts';
import type { CacheManager } from '../cache/cache-manager.ts';
import type { HubRequest } from '../hub-request.ts';
import { resourceOf, type OfflineCache } from '../cache/offline-cache.ts';
import { objectNotCached } from './not-cached.ts';
import { writeCachedJson, writeCachedStatus } from './cached-response.ts';
import type { FilterChain } from '../filter/filter-chain.ts';
import { answerList } from './list-answer.ts';
import { answerWrite, offlineRefusal } from './offline-writes.ts';
import {
  OfflineWatches,
  answerWatch,
  offlineWatchExpired,
  realTimers,
  type WatchTimers,
} from './watch-answer.ts';

/** How often an offline watch that allows bookmarks gets one. */
export const DEFAULT_BOOKMARK_INTERVAL_MS = 15_000;

/**
 * Answers requests while the control plane is unreachable, from the cache,
 * in the apiserver's own shapes. Every response carries X-Edgebox-Source: cache.
 */
export class LocalProxy {
  private readonly cache: OfflineCache;
  private readonly log: Logger;
  private readonly nodeName: string;
  private readonly clock: () => number;
  private readonly watches = new OfflineWatches();
  private readonly bookmarkIntervalMs: number;
  private readonly timers: WatchTimers;
  private readonly random: () => number;
  private readonly filters: FilterChain | undefined;

  constructor(opts: {
    cache: CacheManager;
    log: Logger;
    nodeName: string;
    clock?: () => number;
    bookmarkIntervalMs?: number;
    timers?: WatchTimers;
    random?: () => number;
    /** The response filters: offline answers are rewritten as online ones are. */
    filters?: FilterChain;
  }) {
    this.filters = opts.filters;
    this.cache = opts.cache.offline;
    this.log = opts.log;
    this.nodeName = opts.nodeName;
    this.clock = opts.clock ?? Date.now;
    this.bookmarkIntervalMs = opts.bookmarkIntervalMs ?? DEFAULT_BOOKMARK_INTERVAL_MS;
    this.timers = opts.timers ?? realTimers;
    this.random = opts.random ?? Math.random;
  }

  /** Answers one request offline, writing the whole response. */
  async serve(req: IncomingMessage, res: ServerResponse, hubReq: HubRequest): Promise<void> {
    const info = hubReq.info;
    try {
      if (!info.isResourceRequest) {
        return writeCachedStatus(
          res,
          serviceUnavailable(
            `the node is offline: the control plane is unreachable and ${info.path} is not served from the cache`,
          ),
        );
      }
      switch (info.verb) {
        case 'get':
          return await this.answerGet(res, hubReq);
        case 'list':
          return await answerList(
            { cache: this.cache, log: this.log, rewrite: this.filters?.for(hubReq) },
            hubReq,
            res,
          );
        case 'watch':
          return await answerWatch(
            {
              cache: this.cache,
              log: this.log,
              watches: this.watches,
              rewrite: this.filters?.for(hubReq),
              options: {
                bookmarkIntervalMs: this.bookmarkIntervalMs,
                timers: this.timers,
                random: this.random,
              },
            },
            hubReq,
            res,
          );
        default:
          return await answerWrite(
            { cache: this.cache, log: this.log, nodeName: this.nodeName, clock: this.clock },
            req,
            res,
            hubReq,
          );
      }
    } catch (err) {
      this.log.error(
        { err: String(err), verb: info.verb, resource: info.resource, name: info.name },
        'answering from the cache failed',
      );
      if (!res.headersSent) writeCachedStatus(res, internalError(String(err)));
      else res.destroy();
    }
  }

  /**
   * Could the cache answer this read exactly, were upstream gone? The boot
   * window answers from the cache only then; otherwise it waits for upstream.
   */
  answersExactly(hubReq: HubRequest): Promise<boolean> {
    return this.cache.answersExactly(hubReq);
  }

  /** The cached copy; 404 only where a known scope or a seen deletion proves it gone; else 503. */
  private async answerGet(res: ServerResponse, hubReq: HubRequest): Promise<void> {
    const info = hubReq.info;
    if (info.subresource !== '' && info.subresource !== 'status') {
      return writeCachedStatus(res, offlineRefusal(hubReq));
    }
    const known = await this.cache.object(
      hubReq.component,
      resourceOf(hubReq),
      info.namespace,
      info.name,
    );
    switch (known.kind) {
      case 'present': {
        const rewrite = this.filters?.for(hubReq);
        const raw = rewrite === undefined ? known.raw : rewrite(known.raw);
        if (raw !== undefined) return writeCachedJson(res, 200, raw);
        // The client never sees this object online either: the same 404.
        return writeCachedStatus(
          res,
          notFound({ group: info.apiGroup, resource: info.resource }, info.name),
        );
      }
      case 'absent':
        return writeCachedStatus(
          res,
          notFound({ group: info.apiGroup, resource: info.resource }, info.name),
        );
      case 'unknown':
        return writeCachedStatus(res, objectNotCached(hubReq, this.cache.loss()));
    }
  }

  /** Upstream is back: end every offline watch with 410 Expired so clients re-list upstream. */
  expireWatches(): void {
    this.watches.closeAll(offlineWatchExpired());
  }

  /**
   * The hub stops: end every offline watch cleanly, as a server-side timeout
   * does. Clients resume from where they were, which the next hub, offline,
   * answers from the cache; a re-list against a store lost meanwhile would
   * tell kubelet its pods are gone.
   */
  closeWatches(): void {
    this.watches.closeAll();
  }

  openWatches(): number {
    return this.watches.count();
  }
}
