import type { IncomingMessage } from 'node:http';
import type { Logger } from '../../src/log.ts';
import { VersionWaiters } from '../../src/kube/version-waiters.ts';
import { nodeHttp } from '../node-http.ts';
import { credentialsOf, putHubAuthorization, upstreamPath } from '../remote/forwarding-policy.ts';
import type { Upstream } from '../upstream/upstream.ts';
import {
  EventRing,
  parseResourceVersion,
  type ChangeType,
  type SharedEvent,
  type SharedObject,
} from './event-ring.ts';

/** A resource read cluster-wide through one upstream LIST+WATCH for the whole node. */
export interface SharedResourceName {
  group: string;
  version: string;
  resource: string;
}

/** What a watcher of the shared resource is handed, in order. */
export type SharedChange =
  | { kind: 'event'; event: SharedEvent }
  | { kind: 'bookmark'; rv: bigint }
  /** The hub closes: the watch ends cleanly (the client re-lists elsewhere). */
  | { kind: 'end' };

/** What a shared resource reports (shared-metrics.ts); every hook optional. */
export interface SharedResourceObserver {
  /** A LIST read upstream: the first one, or why the held copy was listed again. */
  relisted?(reason: RelistReason): void;
  /** One change applied from upstream (reached every watcher of the resource). */
  event?(): void;
}

/** Why a shared resource listed upstream: its first list, a 410, or a failed stream. */
export type RelistReason = 'initial' | 'expired' | 'error';

export interface SharedResourceDeps {
  name: SharedResourceName;
  observer?: SharedResourceObserver;
  /** The servers to try, best first (HealthChecker.routable()); none: offline. */
  targets: () => readonly Upstream[];
  log: Logger;
  /** Events kept for watches that resume (the apiserver's watch cache keeps ~100 per resource). */
  ringCapacity?: number;
  /** Wait before a new LIST or WATCH after a failure. */
  backoffMs?: number;
}

/** The path of a cluster-wide request for `name`. */
export function collectionPath(name: SharedResourceName): string {
  return name.group === ''
    ? `/api/${name.version}/${name.resource}`
    : `/apis/${name.group}/${name.version}/${name.resource}`;
}

interface ListBody {
  kind?: unknown;
  metadata?: { resourceVersion?: unknown };
  items?: unknown;
}

interface ObjectMeta {
  metadata?: { name?: unknown; namespace?: unknown; labels?: unknown; resourceVersion?: unknown };
}

function sharedObject(object: unknown, raw?: Buffer): SharedObject | undefined {
  const meta = (object as ObjectMeta | null)?.metadata;
  if (meta === undefined || typeof meta.name !== 'string') return undefined;
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : '';
  const labels =
    typeof meta.labels === 'object' && meta.labels !== null
      ? (meta.labels as Record<string, string>)
      : undefined;
  return {
    key: namespace === '' ? meta.name : `${namespace}/${meta.name}`,
    namespace,
    labels,
    object,
    raw: raw ?? Buffer.from(JSON.stringify(object)),
  };
}

function sortedByKey(objects: SharedObject[]): SharedObject[] {
  return objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function objectRv(o: SharedObject): bigint | undefined {
  const rv = (o.object as ObjectMeta).metadata?.resourceVersion;
  return typeof rv === 'string' ? parseResourceVersion(rv) : undefined;
}

/** Why a LIST or WATCH ended; a `relist` reason means the next step is a LIST. */
class StreamEnded extends Error {
  readonly relist: RelistReason | undefined;

  constructor(message: string, relist: RelistReason | undefined) {
    super(message);
    this.relist = relist;
  }
}

/**
 * One shared resource: one upstream LIST, then WATCH from its
 * resourceVersion (with bookmarks), resumed after a cut and re-listed when
 * upstream says 410 Gone. Holds the current objects and a ring of recent
 * changes; every local LIST and WATCH of the resource is answered from them
 * (shared-answer.ts). A re-list is compared with what was held, so watchers
 * see the difference as events: nothing lost, nothing twice.
 */
export class SharedResource {
  readonly name: SharedResourceName;
  readonly #deps: SharedResourceDeps;
  readonly #objects = new Map<string, SharedObject>();
  readonly #watchers = new Set<(change: SharedChange) => void>();
  #ring: EventRing | undefined;
  #rv = 0n;
  #listKind = '';
  #stopped = false;
  #current: IncomingMessage | undefined;
  /** Ends a request still waiting for its answer when the hub closes. */
  readonly #abort = new AbortController();
  #wake: (() => void) | undefined;
  #running: Promise<void> | undefined;
  readonly #syncWaiters: Array<() => void> = [];
  /** Requests waiting for the resource to reach a version (a LIST or watch-list "not older than"). */
  readonly #versionWaiters = new VersionWaiters<bigint>();
  /** Upstream requests made, for logs and tests of the hub alone. */
  lists = 0;
  watches = 0;

  constructor(deps: SharedResourceDeps) {
    this.name = deps.name;
    this.#deps = deps;
  }

  /** Synced: a LIST has been read; answers may come from here. */
  get synced(): boolean {
    return this.#ring !== undefined;
  }

  get resourceVersion(): bigint {
    return this.#rv;
  }

  /** The list kind upstream named (`ServiceList`). */
  get listKind(): string {
    return this.#listKind;
  }

  /** The objects held, in the apiserver's order (namespace, then name). */
  objects(): SharedObject[] {
    return sortedByKey([...this.#objects.values()]);
  }

  /** The oldest resourceVersion a watch may resume from (older ones get 410). */
  get oldestResumable(): bigint {
    return this.#ring?.floor ?? this.#rv;
  }

  /** Changes after `rv`, or 'expired'; throws when not synced. */
  since(rv: bigint): readonly SharedEvent[] | 'expired' {
    if (this.#ring === undefined) throw new Error('shared resource not synced');
    return this.#ring.since(rv);
  }

  /**
   * The objects as they were at `rv`, in the apiserver's order, rebuilt by
   * undoing the ring's later changes (the watch cache keeps snapshots for
   * the same purpose): the pages of one list all read one version. Expired
   * when the ring no longer reaches back to `rv` or a re-list began a new
   * history after it; undefined when `rv` is newer than what is held.
   */
  objectsAt(rv: bigint): SharedObject[] | 'expired' | undefined {
    if (this.#ring === undefined || rv > this.#rv) return undefined;
    if (rv === this.#rv) return this.objects();
    const later = this.#ring.since(rv);
    if (later === 'expired') return 'expired';
    const at = new Map(this.#objects);
    for (let i = later.length - 1; i >= 0; i--) {
      const e = later[i];
      if (e === undefined) continue;
      if (e.previous !== undefined) at.set(e.current.key, e.previous);
      else if (e.type === 'DELETED') at.set(e.current.key, e.current);
      else at.delete(e.current.key);
    }
    return sortedByKey([...at.values()]);
  }

  /**
   * Resolves true once the resource has reached `rv`, false after `ms`
   * (the watch cache's 3 s before "Too large resource version").
   */
  reached(rv: bigint, ms: number): Promise<boolean> {
    return this.#versionWaiters.wait(rv, this.#rv, ms);
  }

  /** Local watches served from here now. */
  get watcherCount(): number {
    return this.#watchers.size;
  }

  /** Calls `watcher` with every change from now on; returns how to stop. */
  subscribe(watcher: (change: SharedChange) => void): () => void {
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }

  /** Resolves once synced, or after `ms` (then `synced` says which). */
  untilSynced(ms: number): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#syncWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  start(): void {
    this.#running ??= this.#run();
  }

  /** Ends every local watch served from here (the hub closes). */
  endWatches(): void {
    this.#emit({ kind: 'end' });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.endWatches();
    this.#versionWaiters.cancel();
    this.#current?.destroy();
    this.#abort.abort();
    this.#wake?.();
    await this.#running;
  }

  async #run(): Promise<void> {
    let relist: RelistReason | undefined = 'initial';
    while (!this.#stopped) {
      const target = this.#deps.targets()[0];
      if (target === undefined) {
        await this.#pause();
        continue;
      }
      try {
        if (relist !== undefined) await this.#list(target, relist);
        relist = undefined;
        await this.#watch(target);
      } catch (err) {
        if (this.#stopped) return;
        // A LIST that failed is tried again for the same reason; a broken watch resumes.
        const ended = err instanceof StreamEnded ? err : undefined;
        relist = ended?.relist ?? relist;
        this.#deps.log.debug(
          { resource: this.name.resource, err: (err as Error).message, relist },
          'shared watch ended; resuming',
        );
        // Only a 410 is answered at once (by a LIST); anything else waits, so a failing upstream is not hammered.
        if (ended?.relist !== 'expired') await this.#pause();
      }
    }
  }

  #pause(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.#deps.backoffMs ?? 1000);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async #request(target: Upstream, query: string): Promise<IncomingMessage> {
    const headers: Record<string, string> = {
      accept: 'application/json',
      'accept-encoding': 'identity',
      'user-agent': 'edgebox-hub/shared',
    };
    const { agent } = credentialsOf({}, target);
    putHubAuthorization(headers, await target.authorization());
    const url = new URL(upstreamPath(target, `${collectionPath(this.name)}?${query}`), target.url);
    return new Promise((resolve, reject) => {
      const req = nodeHttp.request(url, { agent, headers, signal: this.#abort.signal }, resolve);
      req.on('error', reject);
      req.end();
    });
  }

  async #list(target: Upstream, reason: RelistReason): Promise<void> {
    this.lists++;
    this.#deps.observer?.relisted?.(reason);
    const res = await this.#request(target, '');
    this.#current = res;
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    this.#current = undefined;
    if (res.statusCode !== 200) {
      throw new StreamEnded(`LIST answered ${res.statusCode}`, 'error');
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ListBody;
    const rv = parseResourceVersion(String(body.metadata?.resourceVersion ?? ''));
    if (rv === undefined || !Array.isArray(body.items)) {
      throw new StreamEnded('LIST answer has no items or resourceVersion', 'error');
    }
    this.#listKind = typeof body.kind === 'string' ? body.kind : '';
    const listed = new Map<string, SharedObject>();
    for (const item of body.items) {
      const o = sharedObject(item);
      if (o !== undefined) listed.set(o.key, o);
    }
    this.#replace(listed, rv);
  }

  /** A (re-)list: what changed since what was held reaches watchers as events. */
  #replace(listed: Map<string, SharedObject>, rv: bigint): void {
    const first = this.#ring === undefined;
    const changes: SharedEvent[] = [];
    for (const [key, before] of this.#objects) {
      if (!listed.has(key))
        changes.push({ type: 'DELETED', rv, current: before, previous: before });
    }
    for (const [key, now] of listed) {
      const before = this.#objects.get(key);
      if (before === undefined)
        changes.push({ type: 'ADDED', rv, current: now, previous: undefined });
      else if (objectRv(before) !== objectRv(now))
        changes.push({ type: 'MODIFIED', rv, current: now, previous: before });
    }
    this.#objects.clear();
    for (const [key, o] of listed) this.#objects.set(key, o);
    this.#rv = rv;
    // A new history: a watch from before this list cannot be resumed from it.
    if (this.#ring === undefined) this.#ring = new EventRing(this.#deps.ringCapacity ?? 100, rv);
    else this.#ring.reset(rv);
    for (const wake of this.#syncWaiters.splice(0)) wake();
    this.#wakeVersionWaiters();
    if (first) return;
    for (const event of changes) {
      this.#deps.observer?.event?.();
      this.#emit({ kind: 'event', event });
    }
  }

  async #watch(target: Upstream): Promise<void> {
    this.watches++;
    const res = await this.#request(
      target,
      `watch=1&allowWatchBookmarks=true&resourceVersion=${this.#rv}`,
    );
    this.#current = res;
    if (res.statusCode === 410) throw new StreamEnded('WATCH answered 410', 'expired');
    if (res.statusCode !== 200) {
      res.resume();
      throw new StreamEnded(`WATCH answered ${res.statusCode}`, undefined);
    }
    let buffered = '';
    res.setEncoding('utf8');
    for await (const chunk of res) {
      buffered += chunk as string;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim() !== '') this.#apply(line);
      }
    }
    this.#current = undefined;
    // The stream ended (timeout, or a cut at an event boundary): resume at once.
    throw new StreamEnded('WATCH stream ended', undefined);
  }

  #apply(line: string): void {
    const event = JSON.parse(line) as { type?: unknown; object?: unknown };
    const meta = (event.object as ObjectMeta | null)?.metadata;
    const rv = parseResourceVersion(String(meta?.resourceVersion ?? ''));
    if (event.type === 'ERROR') {
      const code = (event.object as { code?: unknown } | null)?.code;
      if (code === 410) throw new StreamEnded('WATCH: 410 Expired', 'expired');
      throw new StreamEnded(`WATCH error event ${JSON.stringify(event.object)}`, 'error');
    }
    if (rv === undefined) throw new StreamEnded(`WATCH event without resourceVersion`, undefined);
    if (event.type === 'BOOKMARK') {
      this.#rv = rv;
      this.#wakeVersionWaiters();
      this.#emit({ kind: 'bookmark', rv });
      return;
    }
    if (event.type !== 'ADDED' && event.type !== 'MODIFIED' && event.type !== 'DELETED') return;
    const current = sharedObject(event.object);
    if (current === undefined) return;
    const previous = this.#objects.get(current.key);
    if (event.type === 'DELETED') this.#objects.delete(current.key);
    else this.#objects.set(current.key, current);
    this.#rv = rv;
    const type: ChangeType = event.type;
    const change: SharedEvent = { type, rv, current, previous };
    this.#ring?.push(change);
    this.#wakeVersionWaiters();
    this.#deps.observer?.event?.();
    this.#emit({ kind: 'event', event: change });
  }

  #wakeVersionWaiters(): void {
    this.#versionWaiters.reached(this.#rv);
  }

  #emit(change: SharedChange): void {
    for (const w of this.#watchers) w(change);
  }
}
