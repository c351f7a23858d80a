import { rm } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SelectorError } from '../../src/kube/selectors.ts';
import { silentLogger } from '../../src/log.ts';
import { CacheManager } from './cache-manager.ts';
import type { ResourceRef } from './keys.ts';
import {
  type FeedEvent,
  type ListAnswer,
  type OfflineQuery,
  type Page,
  type WatchFeed,
} from './offline-cache.ts';
import { hubRequest, list, pod, record, tempDataDir, watchEvent } from './recording-fixtures.ts';

/** The offline read seam without HTTP: what local/ gets for each query. */

const PODS: ResourceRef = { group: '', version: 'v1', resource: 'pods' };
const NODE_A_PODS = '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a';

let dir: string;
let cache: CacheManager;

beforeEach(async () => {
  dir = await tempDataDir();
  cache = await CacheManager.open({ dataDir: `${dir}/hub`, log: silentLogger() });
});
afterEach(async () => {
  await cache.close();
  await rm(dir, { recursive: true, force: true });
});

function query(q: Partial<OfflineQuery> = {}): OfflineQuery {
  return {
    component: 'kubelet',
    resource: PODS,
    namespace: '',
    labelSelector: '',
    fieldSelector: '',
    ...q,
  };
}

/** The answer with its bodies read and reduced to names. */
async function listed(q: OfflineQuery, page: Page = { limit: 0 }) {
  const answer = await cache.offline.list(q, page);
  if (answer instanceof Error) throw answer;
  if (!('bodies' in answer)) return { coverage: answer.coverage };
  const names: string[] = [];
  for await (const batch of answer.bodies) {
    for (const raw of batch) {
      names.push((JSON.parse(raw.toString()) as { metadata: { name: string } }).metadata.name);
    }
  }
  const { bodies: _bodies, ...rest } = answer satisfies Extract<ListAnswer, { bodies: unknown }>;
  return { ...rest, names };
}

/** kubelet's offline acknowledgement of pod `name`: a new resourceVersion, labels as given. */
function acknowledge(name: string, labels?: Record<string, string>) {
  return cache.offline.writeLocal('kubelet', PODS, 'default', name, (current, newRv) => {
    const obj = JSON.parse(current?.toString() ?? '{}') as { metadata: Record<string, unknown> };
    const metadata = { ...obj.metadata, resourceVersion: newRv, ...(labels && { labels }) };
    return { object: { ...obj, metadata } };
  });
}

async function listNodeA(items: unknown[], rv = '10'): Promise<void> {
  await record(cache, hubRequest('kubelet', 'GET', NODE_A_PODS), list('PodList', rv, items));
}

describe('offline list', () => {
  it('a resource the component never cached: coverage never, saying what was never listed', async () => {
    expect(await listed(query({ fieldSelector: 'spec.nodeName=node-a' }))).toEqual({
      coverage: {
        state: 'never',
        why: 'kubelet never listed pods in all namespaces with fieldSelector spec.nodeName=node-a online, nor a scope containing it',
      },
    });
  });

  it('a scope no listed scope contains, of a resource partly cached: coverage partial, never a list', async () => {
    await listNodeA([pod('a', { rv: '5', labels: { app: 'web' } })]);
    const answer = await listed(query({ labelSelector: 'app=web' }));
    expect(answer.coverage.state).toBe('partial');
    expect(answer).not.toHaveProperty('names');
  });

  it('an exact scope: complete, as of its list, with its members', async () => {
    await listNodeA([pod('a', { rv: '5' }), pod('b', { rv: '6' })], '10');
    expect(await listed(query({ fieldSelector: 'spec.nodeName=node-a' }))).toEqual({
      coverage: { state: 'complete' },
      resourceVersion: '10',
      identity: { kind: 'Pod', apiVersion: 'v1' },
      continue: undefined,
      remainingItemCount: undefined,
      names: ['a', 'b'],
    });
  });

  it('a narrower scope is answered from a wider one, filtered exactly', async () => {
    await listNodeA([
      pod('a', { rv: '5', labels: { app: 'web' } }),
      pod('b', { rv: '6', labels: { app: 'db' } }),
      pod('c', { rv: '7', namespace: 'other', labels: { app: 'web' } }),
    ]);
    const answer = await listed(
      query({
        namespace: 'default',
        fieldSelector: 'spec.nodeName=node-a',
        labelSelector: 'app=web',
      }),
    );
    expect(answer).toMatchObject({ coverage: { state: 'complete' }, names: ['a'] });
  });

  it("answers from the covering scope's own members, never another scope's older snapshot", async () => {
    // kube-proxy-like: an unfiltered list, then a node list; b leaves the node list upstream.
    await record(
      cache,
      hubRequest('kubelet', 'GET', '/api/v1/pods'),
      list('PodList', '10', [
        pod('a', { rv: '5' }),
        pod('b', { rv: '6' }),
        pod('x', { rv: '7', node: 'node-b' }),
      ]),
    );
    await listNodeA([pod('a', { rv: '5' })], '20');
    expect(await listed(query({ fieldSelector: 'spec.nodeName=node-a' }))).toMatchObject({
      names: ['a'],
    });
  });

  it('pages a filtered list by id: continue names the last object, remainingItemCount the rest', async () => {
    await listNodeA(
      ['a', 'b', 'c', 'd', 'e'].map((n) => pod(n, { rv: '5' })),
      '10',
    );
    const q = query({ fieldSelector: 'spec.nodeName=node-a' });
    const first = await listed(q, { limit: 2 });
    expect(first).toMatchObject({
      names: ['a', 'b'],
      continue: 'default/b',
      remainingItemCount: 3,
    });
    const second = await listed(q, { limit: 2, after: { id: 'default/b', resourceVersion: '10' } });
    expect(second).toMatchObject({
      names: ['c', 'd'],
      continue: 'default/d',
      remainingItemCount: 1,
    });
    const last = await listed(q, { limit: 2, after: { id: 'default/d', resourceVersion: '10' } });
    expect(last).toMatchObject({ names: ['e'], continue: undefined, resourceVersion: '10' });
  });

  it("pages an unfiltered list by key range, the continue token carrying the first page's version", async () => {
    await record(
      cache,
      hubRequest('kubelet', 'GET', '/api/v1/pods'),
      list('PodList', '10', [pod('a', { rv: '5' }), pod('b', { rv: '6' }), pod('c', { rv: '7' })]),
    );
    const first = await listed(query(), { limit: 2 });
    expect(first).toMatchObject({
      names: ['a', 'b'],
      continue: 'default/b',
      resourceVersion: '10',
    });
    // A later page keeps the resourceVersion its token carries, whatever was recorded since.
    const rest = await listed(query(), {
      limit: 2,
      after: { id: 'default/b', resourceVersion: '9' },
    });
    expect(rest).toMatchObject({ names: ['c'], continue: undefined, resourceVersion: '9' });
  });

  it('filters a cold resource (nothing loaded in memory) by each object as read', async () => {
    await listNodeA([
      pod('a', { rv: '5', labels: { app: 'web' } }),
      pod('b', { rv: '6', labels: { app: 'db' } }),
    ]);
    await cache.close();
    cache = await CacheManager.open({ dataDir: `${dir}/hub`, log: silentLogger() });
    expect(cache.store.entry('kubelet', PODS)?.state).toBeUndefined();
    const answer = await listed(
      query({ fieldSelector: 'spec.nodeName=node-a', labelSelector: 'app=web' }),
    );
    expect(answer).toMatchObject({ names: ['a'] });
    // Loading nothing is the point: a booting kubelet's first list must not wait for it.
    expect(cache.store.entry('kubelet', PODS)?.state).toBeUndefined();
  });

  it('a malformed selector is an error, not an answer', async () => {
    expect(
      await cache.offline.list(query({ fieldSelector: 'spec.color=red' }), { limit: 0 }),
    ).toBeInstanceOf(SelectorError);
  });
});

describe('offline reads after writes', () => {
  it('wait for what was already queued: a deletion the hub relayed is never answered again', async () => {
    const ALL_PODS = '/api/v1/pods';
    await record(
      cache,
      hubRequest('kubelet', 'GET', ALL_PODS),
      list('PodList', '10', [pod('a', { rv: '5' }), pod('b', { rv: '6' })]),
    );
    // The DELETED reached the client as it was queued for the store; not yet committed.
    const recording = record(
      cache,
      hubRequest('kubelet', 'GET', `${ALL_PODS}?watch=1`),
      watchEvent('DELETED', pod('b', { rv: '11' })),
    );
    const [all, page, known] = await Promise.all([
      listed(query()),
      listed(query(), { limit: 5 }),
      cache.offline.object('kubelet', PODS, 'default', 'b'),
    ]);
    expect(all).toMatchObject({ names: ['a'] });
    expect(page).toMatchObject({ names: ['a'] });
    expect(known.kind).toBe('absent');
    await recording;
  });
});

describe('offline object', () => {
  it('present, absent where a known scope or a seen deletion proves it, else unknown', async () => {
    await listNodeA([pod('a', { rv: '5' })]);
    await record(
      cache,
      hubRequest('kubelet', 'GET', '/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3Dnode-a'),
      watchEvent('DELETED', pod('a', { rv: '9' })),
    );
    await record(
      cache,
      hubRequest('kubelet', 'GET', '/api/v1/namespaces/default/pods/b'),
      JSON.stringify(pod('b', { rv: '7' })),
    );
    await record(
      cache,
      hubRequest(
        'kubelet',
        'GET',
        '/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dcfg',
      ),
      list('ConfigMapList', '12', []),
    );
    const CONFIGMAPS: ResourceRef = { group: '', version: 'v1', resource: 'configmaps' };
    const o = cache.offline;
    expect((await o.object('kubelet', PODS, 'default', 'b')).kind).toBe('present');
    expect((await o.object('kubelet', PODS, 'default', 'a')).kind).toBe('absent'); // tombstone
    expect((await o.object('kubelet', CONFIGMAPS, 'default', 'cfg')).kind).toBe('absent'); // scope
    expect((await o.object('kubelet', CONFIGMAPS, 'default', 'other')).kind).toBe('unknown');
    expect((await o.object('kubelet', PODS, 'default', 'never')).kind).toBe('unknown');
    expect((await o.object('kube-proxy', PODS, 'default', 'b')).kind).toBe('unknown');
  });

  it('answersExactly agrees with what list and object answer', async () => {
    await listNodeA([pod('a', { rv: '5' })]);
    const o = cache.offline;
    expect(await o.answersExactly(hubRequest('kubelet', 'GET', NODE_A_PODS))).toBe(true);
    expect(await o.answersExactly(hubRequest('kubelet', 'GET', '/api/v1/pods'))).toBe(false);
    expect(
      await o.answersExactly(hubRequest('kubelet', 'GET', '/api/v1/namespaces/default/pods/a')),
    ).toBe(true);
    // A pod the node list does not hold may still exist on another node: not known.
    expect(
      await o.answersExactly(hubRequest('kubelet', 'GET', '/api/v1/namespaces/default/pods/zz')),
    ).toBe(false);
    expect(
      await o.answersExactly(
        hubRequest('kubelet', 'GET', '/api/v1/pods?fieldSelector=spec.color%3Dred'),
      ),
    ).toBe(true);
  });
});

describe('offline watch', () => {
  /** A started feed of the query and the events it sent, as `TYPE name rv`. */
  async function watching(
    q: OfflineQuery,
    from: { resourceVersion: string; initialEvents: boolean },
  ): Promise<{ feed: WatchFeed; events: string[] }> {
    const answer = cache.offline.watch(q, from);
    if (answer instanceof Error || !('feed' in answer)) throw new Error('expected a feed');
    const events: string[] = [];
    await answer.feed.start(
      (e: FeedEvent) => {
        const name = (JSON.parse(e.raw.toString()) as { metadata: { name: string } }).metadata.name;
        events.push(`${e.type} ${name} ${e.rv}`);
      },
      () => Promise.resolve(),
    );
    return { feed: answer.feed, events };
  }
  const NODE_A = query({ fieldSelector: 'spec.nodeName=node-a' });

  it('a scope never listed: no feed, the coverage instead', () => {
    const answer = cache.offline.watch(query(), { resourceVersion: '', initialEvents: false });
    expect(answer).toMatchObject({ coverage: { state: 'never' } });
    expect(answer).not.toHaveProperty('feed');
  });

  it('from nothing: every matching object ADDED, then later commits as they come', async () => {
    await listNodeA([pod('a', { rv: '5' }), pod('b', { rv: '6', labels: { app: 'web' } })], '10');
    const { feed, events } = await watching(NODE_A, { resourceVersion: '0', initialEvents: false });
    expect(events).toEqual(['ADDED a 5', 'ADDED b 6']);
    expect(feed.resourceVersion()).toBe('10');
    // kubelet's heartbeat acknowledged offline reaches the open watch.
    await acknowledge('a');
    expect(events).toEqual(['ADDED a 5', 'ADDED b 6', 'MODIFIED a 11']);
    feed.close();
  });

  it('from a resourceVersion: only what is newer, and deletions newer than it', async () => {
    await listNodeA([pod('a', { rv: '5' }), pod('b', { rv: '6' }), pod('c', { rv: '7' })], '10');
    await record(
      cache,
      hubRequest('kubelet', 'GET', '/api/v1/pods?watch=1&fieldSelector=spec.nodeName%3Dnode-a'),
      watchEvent('MODIFIED', pod('b', { rv: '12' })) +
        watchEvent('DELETED', pod('c', { rv: '13' })),
    );
    const { feed, events } = await watching(NODE_A, {
      resourceVersion: '10',
      initialEvents: false,
    });
    expect(events).toEqual(['MODIFIED b 12', 'DELETED c 13']);
    feed.close();
  });

  it('an object leaving the watched scope is a DELETED; nothing comes after close()', async () => {
    await listNodeA([pod('a', { rv: '5', labels: { app: 'web' } })], '10');
    const { feed, events } = await watching(
      query({ fieldSelector: 'spec.nodeName=node-a', labelSelector: 'app=web' }),
      { resourceVersion: '', initialEvents: true },
    );
    await acknowledge('a', { app: 'db' });
    expect(events).toEqual(['ADDED a 5', 'DELETED a 11']);
    feed.close();
    await acknowledge('a', { app: 'web' });
    expect(events).toHaveLength(2);
  });
});
