import { minimalObject, type StoreChange } from './apply-rules.ts';
import type { CacheStore } from './cache-store.ts';
import { splitObjectId } from './keys.ts';
import type { ResourceEntry, ScopeState } from './resource-state.ts';
import { compareResourceVersions, maxResourceVersion } from './resource-version.ts';
import { scopeMatches, type CompiledScope } from './scope.ts';

/** One event an offline watch sends, its object as stored. */
export interface FeedEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly raw: Buffer;
  readonly rv: string;
}

const REPLAY_BATCH = 500;

/**
 * The events of one offline watch of a known scope (offline-cache.ts): what
 * the client lacks as of its resourceVersion (ADDED for every matching
 * object when it starts from nothing or asked for initial events; else
 * what is newer, and DELETED for deletions newer), then the changes each
 * later commit makes to the scope (local acknowledgements). It tracks what
 * the client holds, so an object leaving the scope is a DELETED and one
 * replayed is not sent again by a commit that raced the replay.
 */
export class WatchFeed {
  readonly kind: string;
  readonly apiVersion: string;
  private readonly store: CacheStore;
  private readonly entry: ResourceEntry;
  private readonly covering: ScopeState;
  private readonly scope: CompiledScope;
  private readonly fromRv: string;
  private readonly replayAll: boolean;
  /** object ids the client currently holds as matching (so leaving the scope is a DELETED) */
  private readonly visible = new Set<string>();
  private readonly sentRv = new Map<string, string>();
  private lastRv: string;
  private readonly buffered: StoreChange[] = [];
  private live = false;
  private closed = false;
  private sink: ((event: FeedEvent) => void) | undefined;
  private readonly unsubscribe: () => void;

  constructor(opts: {
    store: CacheStore;
    entry: ResourceEntry;
    /** the known scope the answer comes from */
    covering: ScopeState;
    /** the scope asked for, which `covering` contains */
    scope: CompiledScope;
    fromRv: string;
    replayAll: boolean;
    identity: { kind: string; apiVersion: string };
  }) {
    this.store = opts.store;
    this.entry = opts.entry;
    this.covering = opts.covering;
    this.scope = opts.scope;
    this.fromRv = opts.fromRv;
    this.replayAll = opts.replayAll;
    this.kind = opts.identity.kind;
    this.apiVersion = opts.identity.apiVersion;
    this.lastRv = opts.fromRv === '0' ? '' : opts.fromRv;
    // Subscribed before the snapshot is read so nothing committed in between is lost.
    this.unsubscribe = this.store.subscribe(this.entry.component, this.entry.ref, (changes) => {
      if (this.live) this.changes(changes);
      else this.buffered.push(...changes);
    });
  }

  /** The resourceVersion a BOOKMARK carries now: the newest the client was brought to. */
  resourceVersion(): string {
    return this.lastRv;
  }

  /**
   * Sends the replay to `send` in slices, waiting for `drained` between them
   * so a large resource is never held in memory whole, then follows commits
   * until close().
   */
  async start(send: (event: FeedEvent) => void, drained: () => Promise<void>): Promise<void> {
    this.sink = send;
    // What was queued before the watch is replayed from the store; what commits later, followed.
    await this.store.writesSettled(this.entry.component, this.entry.ref);
    const state = await this.store.stateOf(this.entry);
    if (!this.closed) {
      // The covering scope's members only: never an older snapshot of another scope.
      const members = await this.store.scopeMembers(this.entry, this.covering.scope.id);
      const matching = members.filter((id) => {
        const meta = state.meta.get(id);
        return (
          meta !== undefined &&
          scopeMatches(this.scope, splitObjectId(id).namespace, meta.labels, meta.fields)
        );
      });
      const fresh = this.replayAll
        ? matching
        : matching
            .filter((id) => newer(state.meta.get(id)?.rv ?? '', this.fromRv))
            .sort((a, b) => byRv(state.meta.get(a)?.rv ?? '', state.meta.get(b)?.rv ?? ''));
      for (const id of matching) this.visible.add(id);
      for (let at = 0; at < fresh.length && !this.closed; at += REPLAY_BATCH) {
        const slice = fresh.slice(at, at + REPLAY_BATCH);
        const raws = await this.store.readObjects(this.entry.component, this.entry.ref, slice);
        slice.forEach((id, i) => {
          const raw = raws[i];
          const meta = state.meta.get(id);
          if (raw === undefined || meta === undefined) return;
          const added = this.replayAll || newer(meta.frv, this.fromRv);
          this.send(added ? 'ADDED' : 'MODIFIED', raw, meta.rv, id);
        });
        await drained();
      }
      if (!this.replayAll) {
        const deletions = [...state.tombstones]
          .filter(([id, t]) => {
            if (!newer(t.rv, this.fromRv) || t.fields === undefined) return false;
            return scopeMatches(this.scope, splitObjectId(id).namespace, t.labels, t.fields);
          })
          .sort((a, b) => byRv(a[1].rv, b[1].rv));
        for (const [id, t] of deletions) {
          const { namespace, name } = splitObjectId(id);
          this.send('DELETED', minimalObject(this.entry, namespace, name, t.rv), t.rv, id);
        }
      }
      this.floorRv(state.maxRv);
    }
    this.floorRv(this.covering.rv);
    this.live = true;
    this.changes(this.buffered);
    this.buffered.length = 0;
  }

  /** No more events: the watch ended. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
  }

  private floorRv(rv: string): void {
    if (rv !== '') this.lastRv = maxResourceVersion(this.lastRv, rv);
  }

  private send(type: FeedEvent['type'], raw: Buffer, rv: string, id: string): void {
    if (this.closed) return;
    this.sentRv.set(id, rv);
    this.floorRv(rv);
    this.sink?.({ type, raw, rv });
  }

  private changes(changes: readonly StoreChange[]): void {
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
}

/** True when `rv` is after `from` (or cannot be compared, so it may be). */
function newer(rv: string, from: string): boolean {
  const c = compareResourceVersions(rv, from);
  return c === undefined || c > 0;
}

function byRv(a: string, b: string): number {
  return compareResourceVersions(a, b) ?? 0;
}
