import { rewriteEvent, type ObjectRewrite } from '../filter/filter-chain.ts';
import type { ServerResponse } from 'node:http';
import { badRequest, expired, type KubeStatus } from '../../src/kube/status.ts';
import type { Logger } from '../../src/log.ts';
import type { HubRequest } from '../hub-request.ts';
import {
  queryOf,
  type FeedEvent,
  type OfflineCache,
  type WatchFeed,
} from '../cache/offline-cache.ts';
import { baseHeaders, drained, writeCachedStatus } from './cached-response.ts';
import { scopeNotCached } from './not-cached.ts';

export interface WatchTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export const realTimers: WatchTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms) => setInterval(fn, ms).unref(),
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

export interface WatchOptions {
  bookmarkIntervalMs: number;
  timers: WatchTimers;
  random: () => number;
}

/** The open offline watches, so they can all be ended when upstream returns. */
export class OfflineWatches {
  private readonly open = new Set<(status: KubeStatus | undefined) => void>();
  add(close: (status: KubeStatus | undefined) => void): () => void {
    this.open.add(close);
    return () => this.open.delete(close);
  }
  count(): number {
    return this.open.size;
  }
  /** Ends every watch: cleanly, or with an ERROR event carrying `status`. */
  closeAll(status?: KubeStatus): void {
    for (const close of [...this.open]) close(status);
  }
}

/**
 * Why offline watches end when upstream returns. A clean end would make
 * client-go and client-node resume upstream from their last resourceVersion,
 * and the ones an offline watch hands out can be ones upstream never issued
 * (heartbeats acknowledged on the node) or never sent the node: the resumed
 * watch would skip what changed meanwhile. 410 Expired is how the apiserver
 * says "list again".
 */
export function offlineWatchExpired(): KubeStatus {
  return expired(
    'the watch was served from the edgebox cache while the control plane was unreachable; ' +
      'its resourceVersion cannot be resumed upstream, list again',
  );
}

/** kube-apiserver's default for a watch without timeoutSeconds: MinRequestTimeout (1800 s) times [1, 2). */
function defaultTimeoutMs(random: () => number): number {
  return Math.floor(1800_000 * (1 + random()));
}

const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

/**
 * Offline WATCH of a scope the cache knows (cache/offline-cache.ts; otherwise
 * a 503 before the stream starts): 200 with newline-delimited JSON events,
 * held open. The cache's WatchFeed says which events (the replay from the
 * requested resourceVersion, then what the store commits); this sends them,
 * the initial-events-end BOOKMARK of a watch-list, BOOKMARKs when asked, and
 * ends at timeoutSeconds or when closeAll() is called.
 */
export async function answerWatch(
  deps: {
    cache: OfflineCache;
    log: Logger;
    watches: OfflineWatches;
    options: WatchOptions;
    /** The response filters' rewrite, as online. */
    rewrite?: ObjectRewrite | undefined;
  },
  req: HubRequest,
  res: ServerResponse,
): Promise<void> {
  const { options } = deps;
  const timeoutText = req.query.get('timeoutSeconds');
  const timeoutSeconds = timeoutText === null ? NaN : Number(timeoutText);
  const timeoutMs =
    Number.isFinite(timeoutSeconds) && timeoutSeconds > 0
      ? timeoutSeconds * 1000
      : defaultTimeoutMs(options.random);
  const bookmarks = req.query.get('allowWatchBookmarks') === 'true';
  const initialEvents = req.query.get('sendInitialEvents') === 'true';

  const answer = deps.cache.watch(queryOf(req), {
    resourceVersion: req.query.get('resourceVersion') ?? '',
    initialEvents,
  });
  if (answer instanceof Error) return writeCachedStatus(res, badRequest(answer.message));
  if (!('feed' in answer)) {
    return writeCachedStatus(res, scopeNotCached(answer.coverage, deps.cache.loss()));
  }
  const feed = answer.feed;
  const watch = new WatchStream(res, feed, deps.rewrite);
  let finished = false;
  let bookmarkTimer: unknown;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    feed.close();
    forget();
    if (bookmarkTimer !== undefined) options.timers.clearInterval(bookmarkTimer);
    options.timers.clearTimeout(timeoutTimer);
    if (!res.writableEnded) res.end();
  };
  const forget = deps.watches.add((status) => {
    if (status !== undefined && !finished) watch.error(status);
    finish();
  });
  res.on('close', finish);

  res.writeHead(200, { ...baseHeaders(), 'Transfer-Encoding': 'chunked' });
  res.flushHeaders();
  const timeoutTimer = options.timers.setTimeout(finish, timeoutMs);

  try {
    await feed.start(
      (event) => watch.send(event),
      () => drained(res),
    );
    if (initialEvents && bookmarks) watch.bookmark(true);
  } catch (err) {
    deps.log.warn({ err: String(err) }, 'offline watch failed while replaying the cache');
    finish();
    return;
  }
  if (bookmarks && !finished) {
    bookmarkTimer = options.timers.setInterval(
      () => watch.bookmark(false),
      options.bookmarkIntervalMs,
    );
  }
}

/** Frames a feed's events on one watch response, as kube-apiserver does. */
class WatchStream {
  private readonly res: ServerResponse;
  private readonly feed: WatchFeed;
  private readonly rewrite: ObjectRewrite | undefined;

  constructor(res: ServerResponse, feed: WatchFeed, rewrite: ObjectRewrite | undefined) {
    this.res = res;
    this.feed = feed;
    this.rewrite = rewrite;
  }

  send(e: FeedEvent): void {
    if (this.res.writableEnded) return;
    const event =
      this.rewrite === undefined
        ? { type: e.type, raw: e.raw }
        : rewriteEvent(this.rewrite, e.type, e.raw);
    if (event === undefined) return;
    this.res.write(
      Buffer.concat([Buffer.from(`{"type":"${event.type}","object":`), event.raw, EVENT_TAIL]),
    );
  }

  error(status: KubeStatus): void {
    if (this.res.writableEnded) return;
    this.res.write(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
  }

  bookmark(initialEventsEnd: boolean): void {
    if (this.res.writableEnded) return;
    const metadata: Record<string, unknown> = { resourceVersion: this.feed.resourceVersion() };
    if (initialEventsEnd) metadata.annotations = { [INITIAL_EVENTS_END]: 'true' };
    const object = { kind: this.feed.kind, apiVersion: this.feed.apiVersion, metadata };
    this.res.write(`${JSON.stringify({ type: 'BOOKMARK', object })}\n`);
  }
}

const EVENT_TAIL = Buffer.from('}\n');
