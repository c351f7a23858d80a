import { makeInformer, type V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  KUBE_PROXY_UA,
  call,
  hubCoreApi,
  hubKubeConfig,
  openWatch,
  until,
  type Reply,
  cleanupsAfterEach,
} from './hub-harness.ts';
import {
  SERVICES,
  changes,
  informer,
  service,
  startSharingHub,
  upstreamCount,
} from './shared-fixtures.ts';

/**
 * The node's shared copy of Services answers LISTs and WATCHes the way
 * kube-apiserver's watch cache does (k8s.io/apiserver storage/cacher):
 * pages of one version, exact and not-older-than reads, watch-lists,
 * waiting for a version not reached yet, bookmarks.
 */

const cleanups = cleanupsAfterEach();

const proxy = { 'User-Agent': KUBE_PROXY_UA };

interface ServiceList {
  metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number };
  items: Array<{ metadata: { name: string } }>;
}

const names = (r: Reply) => r.json<ServiceList>().items.map((i) => i.metadata.name);
const list = (hubUrl: string, query: string) =>
  call(`${hubUrl}${SERVICES}?${query}`, { headers: proxy });

describe("a shared resource answers as the apiserver's watch cache", () => {
  it('pages one version with limit/continue: what changes meanwhile stays out, and upstream is not asked', async () => {
    const { api, hubUrl } = await startSharingHub(cleanups);
    for (const n of ['s1', 's2', 's3', 's4', 's5']) api.store.create('services', service(n));
    const watcher = await informer(cleanups, hubUrl, SERVICES, KUBE_PROXY_UA);
    const rv = watcher.rv;

    const first = await list(
      hubUrl,
      `resourceVersion=${rv}&resourceVersionMatch=NotOlderThan&limit=2`,
    );
    expect(first.status).toBe(200);
    expect(names(first)).toEqual(['kubernetes', 's1']);
    const meta = first.json<ServiceList>().metadata;
    expect(meta).toMatchObject({ resourceVersion: rv, remainingItemCount: 4 });

    api.store.delete('services', 's2', 'default');
    api.store.create('services', service('s6'));
    await until(() => changes(watcher.watch.events).length === 2, 'the changes on the hub');

    const second = await list(hubUrl, `limit=2&continue=${meta.continue}`);
    expect(names(second)).toEqual(['s2', 's3']);
    const third = await list(
      hubUrl,
      `limit=2&continue=${second.json<ServiceList>().metadata.continue}`,
    );
    expect(names(third)).toEqual(['s4', 's5']);
    expect(third.json<ServiceList>().metadata).toEqual({ resourceVersion: rv });
    // The shared LIST was the only one upstream.
    expect(upstreamCount(api, SERVICES, 'list')).toBe(1);
  });

  it('Exact reads the version asked for; older than the hub keeps, an exact read goes upstream and a continue is 410 Expired; a token the hub never wrote gets the 400 upstream gives', async () => {
    const { api, hubUrl } = await startSharingHub(cleanups);
    api.store.create('services', service('first'));
    const watcher = await informer(cleanups, hubUrl, SERVICES, KUBE_PROXY_UA);
    const rv = watcher.rv;
    const page = await list(hubUrl, `resourceVersion=${rv}&limit=1`);
    const token = page.json<ServiceList>().metadata.continue;
    expect(token).toBeDefined();

    api.store.create('services', service('later'));
    await until(() => changes(watcher.watch.events).length === 1, 'the new Service on the hub');
    const exact = await list(hubUrl, `resourceVersion=${rv}&resourceVersionMatch=Exact`);
    expect(names(exact)).toEqual(['first', 'kubernetes']);
    expect(exact.json<ServiceList>().metadata.resourceVersion).toBe(rv);
    expect(upstreamCount(api, SERVICES, 'list')).toBe(1);

    // More changes than the hub keeps (100, as the watch cache's default).
    for (let i = 0; i < 100; i++) {
      api.store.patch('services', 'later', 'default', 'merge', {
        metadata: { labels: { i: `${i}` } },
      });
    }
    await until(() => changes(watcher.watch.events).length === 101, 'the churn on the hub');

    const expiredPage = await list(hubUrl, `limit=1&continue=${token}`);
    expect(expiredPage.status).toBe(410);
    expect(expiredPage.json()).toMatchObject({ kind: 'Status', code: 410, reason: 'Expired' });
    expect(upstreamCount(api, SERVICES, 'list')).toBe(1);

    const older = await list(hubUrl, `resourceVersion=${rv}&resourceVersionMatch=Exact`);
    expect(older.status).toBe(200);
    expect(names(older)).toEqual(['first', 'kubernetes']);
    expect(upstreamCount(api, SERVICES, 'list')).toBe(2);

    const garbled = await list(hubUrl, 'limit=1&continue=not-a-token');
    expect(garbled.status).toBe(400);
    expect(garbled.json<{ message: string }>().message).toContain('invalid continue token');
  });

  it('a continue token upstream wrote for a version the hub has not reached goes upstream at once', async () => {
    const { api, hubUrl } = await startSharingHub(cleanups);
    api.store.create('services', service('web'));
    await informer(cleanups, hubUrl, SERVICES, KUBE_PROXY_UA);
    // Upstream moves on without a Service changing: the hub's copy stays at its version.
    api.store.create('configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'elsewhere', namespace: 'default' },
    });
    // A consistent paged list is upstream's; its continue token names upstream's newest version.
    const first = await list(hubUrl, 'limit=1');
    expect(names(first)).toEqual(['kubernetes']);
    const second = await list(
      hubUrl,
      `limit=1&continue=${first.json<ServiceList>().metadata.continue}`,
    );
    expect(second.status).toBe(200);
    expect(names(second)).toEqual(['web']);
    expect(upstreamCount(api, SERVICES, 'list')).toBe(3);
  });

  it('a watch-list gets what is held as ADDED events, then a BOOKMARK annotated k8s.io/initial-events-end, then the changes; without a version it goes upstream', async () => {
    const { api, hub, hubUrl } = await startSharingHub(cleanups);
    api.store.create('services', service('web'));
    await informer(cleanups, hubUrl, SERVICES, KUBE_PROXY_UA);
    const watchList = openWatch(
      `${hubUrl}${SERVICES}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan` +
        '&resourceVersion=0&allowWatchBookmarks=true',
      proxy,
    );
    cleanups.push(() => {
      watchList.close();
    });
    await until(() => watchList.events.some((e) => e.type === 'BOOKMARK'), 'the initial events');
    api.store.create('services', service('after'));
    await until(() => watchList.events.length === 4, 'the change after the initial events');
    expect(watchList.events.map((e) => `${e.type} ${e.object.metadata?.name ?? ''}`)).toEqual([
      'ADDED kubernetes',
      'ADDED web',
      'BOOKMARK ',
      'ADDED after',
    ]);
    expect(watchList.events[2]?.object).toMatchObject({
      kind: 'Service',
      apiVersion: 'v1',
      metadata: { annotations: { 'k8s.io/initial-events-end': 'true' } },
    });
    expect(upstreamCount(api, SERVICES, 'watch')).toBe(1);
    expect(await hub.registry.metrics()).toContain(
      'edgebox_hub_shared_watchers{resource="services"} 2',
    );

    // Without a version the initial events must be current: only upstream can promise that.
    const consistent = openWatch(
      `${hubUrl}${SERVICES}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan` +
        '&allowWatchBookmarks=true',
      proxy,
    );
    cleanups.push(() => {
      consistent.close();
    });
    await until(() => upstreamCount(api, SERVICES, 'watch') === 2, 'the watch-list upstream');
  });

  it('a read at a version the hub has not reached waits for it; after 3 s it is a 504 "Too large resource version", as from the apiserver', async () => {
    const { api, hubUrl } = await startSharingHub(cleanups);
    const watcher = await informer(cleanups, hubUrl, SERVICES, KUBE_PROXY_UA);
    const next = BigInt(watcher.rv) + 1n;
    const waiting = list(hubUrl, `resourceVersion=${next}&resourceVersionMatch=NotOlderThan`);
    api.store.create('services', service('next'));
    const reached = await waiting;
    expect(reached.status).toBe(200);
    expect(names(reached)).toContain('next');
    expect(BigInt(reached.json<ServiceList>().metadata.resourceVersion)).toBeGreaterThanOrEqual(
      next,
    );

    const far = BigInt(watcher.rv) + 1000n;
    const farWatch = openWatch(
      `${hubUrl}${SERVICES}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan` +
        `&resourceVersion=${far}&allowWatchBookmarks=true`,
      proxy,
    );
    const [tooLarge, watchEnd] = await Promise.all([
      list(hubUrl, `resourceVersion=${far}`),
      farWatch.ended,
    ]);
    const status = {
      kind: 'Status',
      code: 504,
      reason: 'Timeout',
      message: expect.stringMatching(new RegExp(`^Too large resource version: ${far}, current: `)),
      details: {
        retryAfterSeconds: 1,
        causes: [expect.objectContaining({ reason: 'ResourceVersionTooLarge' })],
      },
    };
    expect(tooLarge.status).toBe(504);
    expect(tooLarge.json()).toMatchObject(status);
    // A watch is answered, and its one ERROR event says why it ends.
    expect(watchEnd).toBe('clean');
    expect(farWatch.events).toEqual([{ type: 'ERROR', object: expect.objectContaining(status) }]);
    expect(upstreamCount(api, SERVICES, 'list')).toBe(1);
  });

  it('bookmarks reach the watchers that asked for them, and only those', async () => {
    const { api, hubUrl } = await startSharingHub(cleanups, { bookmarkIntervalMs: 50 });
    const asked = await informer(cleanups, hubUrl, SERVICES, KUBE_PROXY_UA);
    const silent = openWatch(`${hubUrl}${SERVICES}?watch=1&resourceVersion=${asked.rv}`, proxy);
    cleanups.push(() => {
      silent.close();
    });
    await until(() => silent.response() !== undefined, 'the second watch to open');
    await until(() => asked.watch.events.some((e) => e.type === 'BOOKMARK'), 'a bookmark');
    api.store.create('services', service('web'));
    await until(() => silent.events.length > 0, 'the change on the second watch');
    // Had a bookmark been written to it, it would have come before the change.
    expect(silent.events.map((e) => e.type)).toEqual(['ADDED']);
  });

  it('a @kubernetes/client-node informer on Services through the hub sees add, update and delete in order', async () => {
    const { api, hubUrl } = await startSharingHub(cleanups);
    const core = hubCoreApi(hubUrl, KUBE_PROXY_UA);
    const inf = makeInformer<V1Service>(hubKubeConfig(hubUrl, KUBE_PROXY_UA), SERVICES, () =>
      core.listServiceForAllNamespaces(),
    );
    const seen: string[] = [];
    for (const verb of ['add', 'update', 'delete'] as const) {
      inf.on(verb, (s: V1Service) => seen.push(`${verb} ${s.metadata?.name ?? ''}`));
    }
    await inf.start();
    cleanups.push(() => inf.stop());
    expect(seen).toEqual(['add kubernetes']);
    await until(() => upstreamCount(api, SERVICES, 'watch') === 1, 'the shared watch');
    api.store.create('services', service('web'));
    api.store.patch('services', 'web', 'default', 'merge', { metadata: { labels: { a: 'b' } } });
    api.store.delete('services', 'web', 'default');
    await until(() => seen.length === 4, 'the changes on the informer');
    expect(seen).toEqual(['add kubernetes', 'add web', 'update web', 'delete web']);
    // The informer's watch is the hub's: upstream sees the one shared watch only.
    expect(upstreamCount(api, SERVICES, 'watch')).toBe(1);
  });
});
