import { describe, expect, it } from 'vitest';
import { conflict } from '../../src/kube/status.ts';
import {
  applyGet,
  applyList,
  applyListItems,
  applyLocalWrite,
  applyNotFound,
  applyWatchEvents,
  completeList,
  StoreCommit,
  TOMBSTONE_LIMIT,
  type WatchEventInput,
} from './apply-rules.ts';
import { keys, objectId, type ResourceRef } from './keys.ts';
import { prepareObject, type PreparedObject } from './prepared-object.ts';
import { createEntry, ResourceState, type ResourceEntry } from './resource-state.ts';
import { compileScope, type CompiledScope } from './scope.ts';

const PODS: ResourceRef = { group: '', version: 'v1', resource: 'pods' };
const NOW = '2024-05-01T10:00:00.000Z';

function scope(labelSelector = '', fieldSelector = '', namespace = ''): CompiledScope {
  const s = compileScope(PODS, namespace, labelSelector, fieldSelector);
  if (s instanceof Error) throw s;
  return s;
}
const ALL = scope();
const NODE_A = scope('', 'spec.nodeName=node-a');
const APP_WEB = scope('app=web');

function pod(name: string, rv: string, opts: { node?: string; app?: string } = {}): PreparedObject {
  const p = prepareObject(
    PODS,
    {
      metadata: {
        name,
        namespace: 'ns',
        resourceVersion: rv,
        ...(opts.app === undefined ? {} : { labels: { app: opts.app } }),
      },
      spec: { nodeName: opts.node ?? 'node-a' },
    },
    { kind: 'Pod', apiVersion: 'v1' },
  );
  if (p instanceof Error) throw p;
  return p;
}

const id = (name: string) => objectId('ns', name);

/** One resource's memory, and the commits made to it (each a LevelDB batch in the store). */
class Resource {
  readonly entry: ResourceEntry = createEntry('kubelet', PODS);
  readonly state = new ResourceState();
  maxRv = '';
  last = this.commit();

  commit(): StoreCommit {
    this.last = new StoreCommit({ now: NOW, maxRv: this.maxRv });
    return this.last;
  }
  list(s: CompiledScope, rv: string, items: PreparedObject[]): this {
    applyList(this.entry, this.state, { scope: s, rv, items, kind: 'Pod' }, this.commit());
    this.maxRv = this.last.maxRv;
    return this;
  }
  /** A list too large to hold, as the store applies it from staging: batch by batch, then completed. */
  stagedList(s: CompiledScope, rv: string, batches: PreparedObject[][], complete = true): this {
    const listed = new Set<string>();
    for (const items of batches) {
      applyListItems(this.entry, this.state, s, items, listed, this.commit());
      this.maxRv = this.last.maxRv;
    }
    if (complete) {
      completeList(this.entry, this.state, { scope: s, rv, kind: 'Pod' }, listed, this.commit());
      this.maxRv = this.last.maxRv;
    }
    return this;
  }
  watch(s: CompiledScope, events: WatchEventInput[]): this {
    applyWatchEvents(this.entry, this.state, s, events, 'Pod', this.commit());
    this.maxRv = this.last.maxRv;
    return this;
  }
  get(object: PreparedObject): this {
    applyGet(this.entry, this.state, object, 'Pod', this.commit());
    this.maxRv = this.last.maxRv;
    return this;
  }
  notFound(name: string): this {
    applyNotFound(this.entry, this.state, id(name), this.commit());
    return this;
  }
  /** A local acknowledgement that relabels (or creates) the object. */
  local(name: string, app: string): this {
    applyLocalWrite(
      this.entry,
      this.state,
      id(name),
      undefined,
      (_current, newRv) => ({
        object: {
          metadata: { name, namespace: 'ns', resourceVersion: newRv, labels: { app } },
          spec: { nodeName: 'node-a' },
        },
      }),
      this.commit(),
    );
    this.maxRv = this.last.maxRv;
    return this;
  }

  /** name -> stored resourceVersion */
  stored(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [key, meta] of this.state.meta) out[key.split('/')[1] ?? key] = meta.rv;
    return out;
  }
  members(s: CompiledScope): string[] {
    return [...(this.state.members.get(s.id) ?? [])].map((k) => k.split('/')[1] ?? k).sort();
  }
  tombstone(name: string): string | undefined {
    return this.state.tombstones.get(id(name))?.rv;
  }
  /** The keys the last commit put and deleted, by kind of record (keys.ts). */
  written(): { put: string[]; del: string[] } {
    const short = (key: string) => `${key[0] ?? ''}:${key.split('/').pop() ?? ''}`;
    return {
      put: this.last.ops.filter((o) => o.type === 'put').map((o) => short(o.key)),
      del: this.last.ops.filter((o) => o.type === 'del').map((o) => short(o.key)),
    };
  }
}

const added = (o: PreparedObject): WatchEventInput => ({ type: 'ADDED', rv: o.rv, object: o });
const modified = (o: PreparedObject): WatchEventInput => ({
  type: 'MODIFIED',
  rv: o.rv,
  object: o,
});
const deleted = (o: PreparedObject): WatchEventInput => ({ type: 'DELETED', rv: o.rv, object: o });

describe('apply rules: which copy wins', () => {
  const cases: Array<{
    name: string;
    given: (r: Resource) => Resource;
    when: (r: Resource) => Resource;
    stored: Record<string, string>;
    tombstone?: string;
  }> = [
    {
      name: 'a stale watch event is ignored',
      given: (r) => r.list(ALL, '10', [pod('a', '10')]),
      when: (r) => r.watch(ALL, [modified(pod('a', '5'))]),
      stored: { a: '10' },
    },
    {
      name: 'a newer watch event replaces the copy',
      given: (r) => r.list(ALL, '10', [pod('a', '10')]),
      when: (r) => r.watch(ALL, [modified(pod('a', '11'))]),
      stored: { a: '11' },
    },
    {
      name: 'the same version again changes nothing',
      given: (r) => r.get(pod('a', '7')),
      when: (r) => r.get(pod('a', '7')),
      stored: { a: '7' },
    },
    {
      name: 'versions compare as integers, not text',
      given: (r) => r.get(pod('a', '9')),
      when: (r) => r.get(pod('a', '10')),
      stored: { a: '10' },
    },
    {
      name: 'a version that cannot be compared is taken as newer',
      given: (r) => r.get(pod('a', '9')),
      when: (r) => r.get(pod('a', 'opaque')),
      stored: { a: 'opaque' },
    },
    {
      name: 'a delete leaves a tombstone at its resourceVersion',
      given: (r) => r.list(ALL, '10', [pod('a', '10')]),
      when: (r) => r.watch(ALL, [deleted(pod('a', '12'))]),
      stored: {},
      tombstone: '12',
    },
    {
      name: 'a delete older than the stored copy keeps the copy',
      given: (r) => r.list(ALL, '10', [pod('a', '10')]),
      when: (r) => r.watch(ALL, [deleted(pod('a', '9'))]),
      stored: { a: '10' },
    },
    {
      name: 'a stale copy of a deleted object never comes back',
      given: (r) => r.list(ALL, '10', [pod('a', '10')]).watch(ALL, [deleted(pod('a', '12'))]),
      when: (r) => r.get(pod('a', '10')),
      stored: {},
      tombstone: '12',
    },
    {
      name: 'an object re-added after its delete is stored and its tombstone goes',
      given: (r) => r.list(ALL, '10', [pod('a', '10')]).watch(ALL, [deleted(pod('a', '12'))]),
      when: (r) => r.watch(ALL, [added(pod('a', '13'))]),
      stored: { a: '13' },
    },
    {
      name: "a 404 deletes the component's copy whatever its version, with no tombstone",
      given: (r) => r.get(pod('a', '20')),
      when: (r) => r.notFound('a'),
      stored: {},
    },
    {
      name: 'a locally acknowledged copy loses to any upstream copy, even an older one',
      given: (r) => r.get(pod('a', '20')).local('a', 'local'),
      when: (r) => r.get(pod('a', '15')),
      stored: { a: '15' },
    },
    {
      name: 'a local write gets a version above everything seen',
      given: (r) => r.get(pod('a', '20')).get(pod('b', '35')),
      when: (r) => r.local('a', 'x'),
      stored: { a: '36', b: '35' },
    },
  ];
  it.each(cases)('$name', ({ given, when, stored, tombstone }) => {
    const r = when(given(new Resource()));
    expect(r.stored()).toEqual(stored);
    expect(r.tombstone('a')).toBe(tombstone);
    expect(r.entry.objects).toBe(Object.keys(stored).length);
  });
});

describe('apply rules: scopes', () => {
  it('a LIST replaces its scope in one commit: unlisted members are deleted with a tombstone', () => {
    const r = new Resource().list(ALL, '10', [pod('a', '5'), pod('b', '6')]);
    r.list(ALL, '20', [pod('b', '6'), pod('c', '15')]);
    expect(r.stored()).toEqual({ b: '6', c: '15' });
    expect(r.members(ALL)).toEqual(['b', 'c']);
    expect(r.tombstone('a')).toBe('20');
    // One commit holds the whole replacement: what came, what went, and the scope record.
    const { put, del } = r.written();
    expect(put).toEqual(expect.arrayContaining(['o:c', 'k:c', 'm:c', 't:a']));
    expect(del).toEqual(expect.arrayContaining(['o:a', 'k:a', 'm:a']));
    expect([...r.last.records().keys()]).toEqual([
      keys.scopes('kubelet', PODS) + encodeURIComponent(ALL.id),
      keys.resourceRecord('kubelet', PODS),
    ]);
    expect(r.entry.scopes.get(ALL.id)).toMatchObject({ rv: '20', complete: true, syncedAt: NOW });
  });

  it('a LIST applied in staged batches and then completed leaves what the same LIST at once leaves', () => {
    const before = () =>
      new Resource()
        .list(NODE_A, '10', [pod('a', '5'), pod('b', '6'), pod('c', '7')])
        .list(APP_WEB, '10', [pod('w', '8', { app: 'web', node: 'node-b' })]);
    const items = [pod('b', '6'), pod('c', '16'), pod('d', '17'), pod('e', '18')];
    const once = before().list(NODE_A, '20', items);
    const staged = before().stagedList(NODE_A, '20', [
      items.slice(0, 1),
      items.slice(1, 3),
      items.slice(3),
    ]);
    for (const r of [once, staged]) {
      expect(r.stored()).toEqual({ b: '6', c: '16', d: '17', e: '18', w: '8' });
      expect(r.members(NODE_A)).toEqual(['b', 'c', 'd', 'e']);
      expect(r.tombstone('a')).toBe('20');
      expect(r.entry.scopes.get(NODE_A.id)).toMatchObject({ rv: '20', complete: true });
      expect(r.maxRv).toBe('20');
    }
    // The completing commit writes the scope record and the removal of what the list dropped.
    expect(staged.written().del).toEqual(expect.arrayContaining(['o:a', 'k:a', 'm:a']));
    expect([...staged.last.records().keys()]).toContain(
      keys.scopes('kubelet', PODS) + encodeURIComponent(NODE_A.id),
    );
  });

  it('staged batches of a LIST drop nothing and leave the scope as it was until it is completed', () => {
    const r = new Resource().list(NODE_A, '10', [pod('a', '5'), pod('b', '6')]);
    r.stagedList(NODE_A, '20', [[pod('b', '6'), pod('c', '15')], [pod('d', '16')]], false);
    // Until completeList, the old members stay and the scope keeps its version.
    expect(r.stored()).toEqual({ a: '5', b: '6', c: '15', d: '16' });
    expect(r.members(NODE_A)).toEqual(['a', 'b', 'c', 'd']);
    expect(r.entry.scopes.get(NODE_A.id)).toMatchObject({ rv: '10', complete: true });
    expect(r.written()).toEqual({ put: ['m:d', 'o:d', 'k:d'], del: [] });
    expect([...r.last.records().keys()]).toEqual([keys.resourceRecord('kubelet', PODS)]);
    expect(r.last.recordsUrgent).toBe(false);
  });

  it('a LIST keeps an object whose stored copy is newer than the list', () => {
    const r = new Resource().list(ALL, '10', [pod('a', '5')]);
    r.watch(ALL, [modified(pod('a', '30'))]);
    r.list(ALL, '20', [pod('a', '5')]);
    expect(r.stored()).toEqual({ a: '30' });
  });

  it('an empty LIST is a complete, empty scope', () => {
    const r = new Resource().list(NODE_A, '10', []);
    expect(r.entry.scopes.get(NODE_A.id)).toMatchObject({ complete: true, rv: '10' });
    expect(r.members(NODE_A)).toEqual([]);
    expect(r.last.recordsUrgent).toBe(true);
  });

  it('a filtered LIST drops what no longer matches from its scope, not from another scope that delivered it', () => {
    const r = new Resource()
      .list(NODE_A, '10', [pod('a', '5'), pod('b', '6')])
      .list(APP_WEB, '10', [pod('c', '7', { app: 'web' })]);
    // b now carries app=web, delivered by the label scope; the node list no longer has it.
    r.watch(APP_WEB, [modified(pod('b', '11', { app: 'web' }))]);
    r.list(NODE_A, '12', [pod('a', '5')]);
    expect(r.members(NODE_A)).toEqual(['a']);
    expect(r.members(APP_WEB)).toEqual(['b', 'c']);
    expect(r.stored()).toEqual({ a: '5', b: '11', c: '7' });
  });

  it('a filtered LIST deletes what it no longer lists when no other scope delivered it', () => {
    const r = new Resource().list(NODE_A, '10', [pod('a', '5'), pod('b', '6')]);
    r.list(NODE_A, '12', [pod('a', '5')]);
    expect(r.stored()).toEqual({ a: '5' });
    expect(r.tombstone('b')).toBe('12');
  });

  it('a LIST claims cached objects that match it even if its scope never delivered them', () => {
    const r = new Resource().get(pod('a', '5')).list(NODE_A, '10', []);
    // a matches spec.nodeName=node-a and the complete list of that scope does not hold it: gone.
    expect(r.stored()).toEqual({});
  });

  it('a DELETED in a filtered watch only drops the claim while another scope still delivers it', () => {
    const r = new Resource()
      .list(NODE_A, '10', [pod('a', '5', { app: 'web' })])
      .list(APP_WEB, '10', [pod('a', '5', { app: 'web' })]);
    r.watch(APP_WEB, [deleted(pod('a', '11'))]);
    expect(r.stored()).toEqual({ a: '5' });
    expect(r.members(APP_WEB)).toEqual([]);
    expect(r.members(NODE_A)).toEqual(['a']);
  });

  it('a watch of a scope never listed records objects but leaves the scope incomplete', () => {
    const r = new Resource().watch(NODE_A, [added(pod('a', '5'))]);
    expect(r.stored()).toEqual({ a: '5' });
    expect(r.entry.scopes.get(NODE_A.id)).toMatchObject({ complete: false, rv: '5' });
    expect(r.last.recordsUrgent).toBe(false);
  });

  it("a BOOKMARK moves the scope's resourceVersion and the highest seen, and changes no object", () => {
    const r = new Resource().list(ALL, '10', [pod('a', '5')]);
    r.watch(ALL, [{ type: 'BOOKMARK', rv: '40' }]);
    expect(r.entry.scopes.get(ALL.id)?.rv).toBe('40');
    expect(r.maxRv).toBe('40');
    expect(r.last.ops).toEqual([]);
  });

  it('only the newest TOMBSTONE_LIMIT deletions are remembered', () => {
    const r = new Resource();
    const count = Math.ceil(TOMBSTONE_LIMIT * 1.1) + 1;
    const events: WatchEventInput[] = [];
    for (let i = 1; i <= count; i++) {
      const p = pod(`p${String(i)}`, String(i));
      events.push(added(p), deleted(pod(p.name, String(count + i))));
    }
    r.watch(ALL, events);
    expect(r.state.tombstones.size).toBeLessThanOrEqual(TOMBSTONE_LIMIT * 1.1);
    expect(r.state.tombstones.size).toBeGreaterThanOrEqual(TOMBSTONE_LIMIT);
    // The oldest went first.
    expect(r.state.tombstones.has(id('p1'))).toBe(false);
    expect(r.state.tombstones.has(id(`p${String(count)}`))).toBe(true);
  });
});

describe('apply rules: what a commit reports', () => {
  it('collects changes only for watched resources, as ADDED, MODIFIED and DELETED', () => {
    const entry = createEntry('kubelet', PODS);
    const state = new ResourceState();
    const watchedCommit = new StoreCommit({ now: NOW, maxRv: '' });
    applyWatchEvents(
      entry,
      state,
      ALL,
      [added(pod('a', '1')), modified(pod('a', '2')), deleted(pod('a', '3'))],
      'Pod',
      watchedCommit,
    );
    expect(watchedCommit.changes.get(entry)?.map((c) => `${c.type} ${c.rv}`)).toEqual([
      'ADDED 1',
      'MODIFIED 2',
      'DELETED 3',
    ]);
    const unwatched = new StoreCommit({ now: NOW, maxRv: '', watched: () => false });
    applyWatchEvents(entry, state, ALL, [added(pod('b', '4'))], 'Pod', unwatched);
    expect(unwatched.changes.size).toBe(0);
  });

  it('a refused local write changes nothing', () => {
    const entry = createEntry('kubelet', PODS);
    const state = new ResourceState();
    const commit = new StoreCommit({ now: NOW, maxRv: '7' });
    const result = applyLocalWrite(
      entry,
      state,
      id('a'),
      undefined,
      () => ({ refusal: conflict({ group: '', resource: 'pods' }, 'a') }),
      commit,
    );
    expect(result).toHaveProperty('refusal');
    expect(commit.ops).toEqual([]);
    expect(commit.maxRv).toBe('7');
    expect(state.meta.size).toBe(0);
  });

  it('every key a commit writes is visible in its overlay until the batch is synced', () => {
    const written = new Map<string, Buffer | null>();
    const r = new Resource();
    const commit = new StoreCommit({ now: NOW, maxRv: '', written });
    applyGet(r.entry, r.state, pod('a', '3'), 'Pod', commit);
    applyNotFound(r.entry, r.state, id('a'), commit);
    expect(written.get(r.entry.prefix.objects + id('a'))).toBeNull();
    expect(written.get(r.entry.prefix.metas + id('a'))).toBeNull();
  });
});
