import { rewriteEvent, type ObjectRewrite } from '../filter/filter-chain.ts';
import type { ServerResponse } from 'node:http';
import { badRequest, expired, type KubeStatus } from '../../src/kube/status.ts';
import type { Logger } from '../../src/log.ts';
import { requestScope, resourceRefOf } from '../cache/cache-manager.ts';
import type { HubRequest } from '../hub-request.ts';
import { minimalObject, type StoreChange } from '../cache/apply-rules.ts';
import type { CacheStore } from '../cache/cache-store.ts';
import { apiVersionOf, splitObjectId } from '../cache/keys.ts';
import { compareResourceVersions, maxResourceVersion } from '../cache/resource-version.ts';
import { scopeMatches, type CompiledScope } from '../cache/scope.ts';
import { baseHeaders, drained, writeCachedStatus } from './cached-response.ts';
import { coveringScope, scopeNotCached } from './cache-knowledge.ts';
import { kindOf } from './list-answer.ts';

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
const REPLAY_BATCH = 500;

/**
 * Offline WATCH of a scope the cache knows (cache-knowledge.ts; otherwise a
 * 503 before the stream starts): 200 with newline-delimited JSON events, held
 * open. It starts from the requested resourceVersion (0/unset or a
 * watch-list: ADDED for every object of the covering scope that matches,
 * then the initial-events-end BOOKMARK; else what is newer than it, and
 * DELETED for deletions newer than it), then follows
 * what the store commits (local heartbeat acknowledgements), sends BOOKMARKs
 * when asked, and ends at timeoutSeconds or when closeAll() is called.
 */
export async function answerWatch(
  deps: {
    store: CacheStore;
    log: Logger;
    watches: OfflineWatches;
    options: WatchOptions;
    /** The response filters' rewrite, as online. */
    rewrite?: ObjectRewrite | undefined;
  },
  req: HubRequest,
  res: ServerResponse,
): Promise<void> {
  const { store, options } = deps;
  const ref = resourceRefOf(req.info);
  const scope = requestScope(req);
  if (scope instanceof Error) return writeCachedStatus(res, badRequest(scope.message));
  const timeoutText = req.query.get('timeoutSeconds');
  const timeoutSeconds = timeoutText === null ? NaN : Number(timeoutText);
  const timeoutMs =
    Number.isFinite(timeoutSeconds) && timeoutSeconds > 0
      ? timeoutSeconds * 1000
      : defaultTimeoutMs(options.random);
  const fromRv = req.query.get('resourceVersion') ?? '';
  const bookmarks = req.query.get('allowWatchBookmarks') === 'true';
  const initialEvents = req.query.get('sendInitialEvents') === 'true';
  const replayAll = fromRv === '' || fromRv === '0' || initialEvents;

  const entry = store.entry(req.component, ref);
  const covering = coveringScope(entry, scope);
  if (entry === undefined || covering === undefined) {
    return writeCachedStatus(res, scopeNotCached(req.component, ref, scope, store.loss()));
  }
  const kind = kindOf(store, entry, ref);
  const apiVersion = apiVersionOf(ref);

  const watch = new WatchStream(res, scope, fromRv, kind, apiVersion, deps.rewrite);
  // Subscribe before reading the snapshot so nothing committed in between is lost.
  const buffered: StoreChange[] = [];
  let live = false;
  const unsubscribe = store.subscribe(req.component, ref, (changes) => {
    if (live) watch.changes(changes);
    else buffered.push(...changes);
  });
  let finished = false;
  let bookmarkTimer: unknown;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    unsubscribe();
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
    const current = entry;
    const state = await store.stateOf(current);
    if (!finished) {
      // The covering scope's members only: never an older snapshot of another scope.
      const members = await store.scopeMembers(current, covering.scope.id);
      const matching = members.filter((id) => {
        const meta = state.meta.get(id);
        return (
          meta !== undefined &&
          scopeMatches(scope, splitObjectId(id).namespace, meta.labels, meta.fields)
        );
      });
      const fresh = replayAll
        ? matching
        : matching
            .filter((id) => newer(state.meta.get(id)?.rv ?? '', fromRv))
            .sort((a, b) => byRv(state.meta.get(a)?.rv ?? '', state.meta.get(b)?.rv ?? ''));
      for (const id of matching) watch.visible.add(id);
      // In slices, waiting for a slow client between them, so replaying a large resource
      // never holds all of it in memory.
      for (let at = 0; at < fresh.length && !finished; at += REPLAY_BATCH) {
        const slice = fresh.slice(at, at + REPLAY_BATCH);
        const raws = await store.readObjects(current.component, current.ref, slice);
        slice.forEach((id, i) => {
          const raw = raws[i];
          const meta = state.meta.get(id);
          if (raw === undefined || meta === undefined) return;
          const added = replayAll || newer(meta.frv, fromRv);
          watch.send(added ? 'ADDED' : 'MODIFIED', raw, meta.rv, id);
        });
        await drained(res);
      }
      if (!replayAll) {
        const deletions = [...state.tombstones]
          .filter(([id, t]) => {
            if (!newer(t.rv, fromRv) || t.fields === undefined) return false;
            return scopeMatches(scope, splitObjectId(id).namespace, t.labels, t.fields);
          })
          .sort((a, b) => byRv(a[1].rv, b[1].rv));
        for (const [id, t] of deletions) {
          const { namespace, name } = splitObjectId(id);
          watch.send('DELETED', minimalObject(current, namespace, name, t.rv), t.rv, id);
        }
      }
      watch.floorRv(state.maxRv);
    }
    watch.floorRv(covering.rv);
    live = true;
    watch.changes(buffered);
    buffered.length = 0;
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

/** True when `rv` is after `from` (or cannot be compared, so it may be). */
function newer(rv: string, from: string): boolean {
  const c = compareResourceVersions(rv, from);
  return c === undefined || c > 0;
}

function byRv(a: string, b: string): number {
  return compareResourceVersions(a, b) ?? 0;
}

/** Writes events to one watch response and tracks what the client has seen. */
class WatchStream {
  /** object ids the client currently holds as matching (so leaving the scope is a DELETED) */
  readonly visible = new Set<string>();
  private readonly sentRv = new Map<string, string>();
  private lastRv: string;
  private readonly res: ServerResponse;
  private readonly scope: CompiledScope;
  private readonly kind: string;
  private readonly apiVersion: string;
  private readonly rewrite: ObjectRewrite | undefined;

  constructor(
    res: ServerResponse,
    scope: CompiledScope,
    fromRv: string,
    kind: string,
    apiVersion: string,
    rewrite: ObjectRewrite | undefined,
  ) {
    this.rewrite = rewrite;
    this.res = res;
    this.scope = scope;
    this.kind = kind;
    this.apiVersion = apiVersion;
    this.lastRv = fromRv === '0' ? '' : fromRv;
  }

  floorRv(rv: string): void {
    if (rv !== '') this.lastRv = maxResourceVersion(this.lastRv, rv);
  }

  send(type: string, raw: Buffer, rv: string, id: string): void {
    if (this.res.writableEnded) return;
    this.sentRv.set(id, rv);
    this.floorRv(rv);
    const event =
      this.rewrite === undefined ? { type, raw } : rewriteEvent(this.rewrite, type, raw);
    if (event === undefined) return;
    this.res.write(
      Buffer.concat([Buffer.from(`{"type":"${event.type}","object":`), event.raw, EVENT_TAIL]),
    );
  }

  changes(changes: readonly StoreChange[]): void {
    for (const c of changes) {
      const seen = this.sentRv.get(c.id);
      if (seen !== undefined && !newer(c.rv, seen)) continue; // already in the replay
      const wasVisible = this.visible.has(c.id);
      const matches =
        c.type !== 'DELETED' && scopeMatches(this.scope, c.namespace, c.labels, c.fields);
      if (matches) {
        this.visible.add(c.id);
        this.send(wasVisible ? 'MODIFIED' : 'ADDED', c.raw, c.rv, c.id);
      } else if (wasVisible) {
        this.visible.delete(c.id);
        this.send('DELETED', c.raw, c.rv, c.id);
      }
    }
  }

  error(status: KubeStatus): void {
    if (this.res.writableEnded) return;
    this.res.write(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
  }

  bookmark(initialEventsEnd: boolean): void {
    if (this.res.writableEnded) return;
    const metadata: Record<string, unknown> = { resourceVersion: this.lastRv };
    if (initialEventsEnd) metadata.annotations = { [INITIAL_EVENTS_END]: 'true' };
    const object = { kind: this.kind, apiVersion: this.apiVersion, metadata };
    this.res.write(`${JSON.stringify({ type: 'BOOKMARK', object })}\n`);
  }
}

const EVENT_TAIL = Buffer.from('}\n');
