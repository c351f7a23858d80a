import { describe, expect, it } from 'vitest';
import {
  KUBELET_UA,
  KUBE_PROXY_UA,
  call,
  openWatch,
  until,
  cleanupsAfterEach,
} from './hub-harness.ts';
import {
  COREDNS_UA,
  SERVICES,
  SLICES,
  changes,
  informer as informerOf,
  service,
  slice,
  startSharingHub,
  upstreamCount,
} from './shared-fixtures.ts';

const cleanups = cleanupsAfterEach();

/** kube-proxy's own selector on both resources. */
const PROXY_SELECTOR = '!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name';

const start = () => startSharingHub(cleanups);
const informer = (hubUrl: string, path: string, ua: string, query = '') =>
  informerOf(cleanups, hubUrl, path, ua, query);

describe('shared resources: one upstream LIST+WATCH per resource for the whole node', () => {
  it('23 watchers of Services and EndpointSlices: the double sees one LIST and one WATCH of each; every watcher gets every event in order', async () => {
    const { api, hubUrl } = await start();
    const uas = [KUBELET_UA, KUBE_PROXY_UA, COREDNS_UA];
    for (let i = 0; i < 20; i++) uas.push(uas[i % 3] ?? KUBELET_UA);
    const watchers = [];
    for (const ua of uas) {
      const query =
        ua === KUBE_PROXY_UA ? `labelSelector=${encodeURIComponent(PROXY_SELECTOR)}` : '';
      watchers.push(await informer(hubUrl, SERVICES, ua, query));
      watchers.push(await informer(hubUrl, SLICES, ua, query));
    }
    api.store.create('services', service('web'));
    api.store.create('endpointslices', slice('web'));
    api.store.update('services', {
      ...service('web'),
      metadata: { name: 'web', namespace: 'default', labels: { tier: 'front' } },
    });
    api.store.delete('endpointslices', 'web', 'default');
    api.store.create('services', {
      ...service('headless'),
      metadata: {
        name: 'headless',
        namespace: 'default',
        labels: { 'service.kubernetes.io/headless': '' },
      },
    });
    api.store.create('services', service('proxied'));

    const expected = (path: string, ua: string): string[] => {
      if (path === SLICES) return ['ADDED web', 'DELETED web'];
      // kube-proxy's selector leaves out what carries the headless label.
      return ua === KUBE_PROXY_UA
        ? ['ADDED web', 'MODIFIED web', 'ADDED proxied']
        : ['ADDED web', 'MODIFIED web', 'ADDED headless', 'ADDED proxied'];
    };
    for (const [i, w] of watchers.entries()) {
      const path = i % 2 === 0 ? SERVICES : SLICES;
      const ua = uas[Math.floor(i / 2)] ?? '';
      const want = expected(path, ua);
      await until(() => changes(w.watch.events).length >= want.length, `watcher ${i}'s events`);
      expect(changes(w.watch.events), `watcher ${i} (${ua.split('/')[0]}) of ${path}`).toEqual(
        want,
      );
    }
    expect(upstreamCount(api, SERVICES, 'list')).toBe(1);
    expect(upstreamCount(api, SERVICES, 'watch')).toBe(1);
    expect(upstreamCount(api, SLICES, 'list')).toBe(1);
    expect(upstreamCount(api, SLICES, 'watch')).toBe(1);
  });

  it('a watcher resuming from an older resourceVersion than the hub holds gets 410 Expired and recovers through a re-list', async () => {
    const { api, hubUrl } = await start();
    const first = await informer(hubUrl, SERVICES, KUBELET_UA);
    api.store.create('services', service('before'));
    await until(() => changes(first.watch.events).length === 1, 'the first event');

    const stale = openWatch(
      `${hubUrl}${SERVICES}?watch=true&resourceVersion=${BigInt(first.rv) - 1n}`,
      { 'User-Agent': KUBE_PROXY_UA },
    );
    cleanups.push(() => {
      stale.close();
    });
    expect(await stale.ended).toBe('clean');
    expect(stale.events).toHaveLength(1);
    expect(stale.events[0]?.type).toBe('ERROR');
    expect(stale.events[0]?.object).toMatchObject({ code: 410, reason: 'Expired' });

    const again = await informer(hubUrl, SERVICES, KUBE_PROXY_UA);
    const names = again.list
      .json<{ items: Array<{ metadata: { name: string } }> }>()
      .items.map((s) => s.metadata.name);
    expect(names).toContain('before');
    api.store.create('services', service('after'));
    await until(() => changes(again.watch.events).length === 1, 'the event after the re-list');
    expect(changes(again.watch.events)).toEqual(['ADDED after']);
    expect(upstreamCount(api, SERVICES, 'list')).toBe(1);
  });

  it("the double's restart with its history gone: watchers see what changed meanwhile, once each, and nothing is lost", async () => {
    const { api, hub, hubUrl } = await start();
    api.store.create('services', service('stays'));
    api.store.create('services', service('goes'));
    const w = await informer(hubUrl, SERVICES, KUBELET_UA);
    await api.stop();
    api.store.create('services', service('arrives'));
    api.store.delete('services', 'goes', 'default');
    api.store.compact();
    await api.start();
    await until(() => changes(w.watch.events).length >= 2, 'the changes made while down');
    api.store.create('services', service('later'));
    await until(() => changes(w.watch.events).length >= 3, 'the change after the restart');
    expect(changes(w.watch.events).sort()).toEqual(
      ['ADDED arrives', 'ADDED later', 'DELETED goes'].sort(),
    );
    expect(changes(w.watch.events).at(-1)).toBe('ADDED later');
    // The shared watch re-listed once after the 410 the restart left it, and says so.
    expect(upstreamCount(api, SERVICES, 'list')).toBe(2);
    const metrics = await hub.registry.metrics();
    expect(metrics).toContain(
      'edgebox_hub_shared_relists_total{resource="services",reason="initial"} 1',
    );
    expect(metrics).toContain(
      'edgebox_hub_shared_relists_total{resource="services",reason="expired"} 1',
    );
    expect(metrics).toContain('edgebox_hub_shared_events_total{resource="services"} 3');
  });
});

describe('shared resources offline', () => {
  it('a LIST answered from the shared watch online is answered from the cache offline, for that component only', async () => {
    const { api, hubUrl, hub } = await start();
    api.store.create('services', service('web'));
    const headers = { 'User-Agent': KUBE_PROXY_UA };
    const online = await call(`${hubUrl}${SERVICES}`, { headers });
    expect(online.status).toBe(200);
    const names = (r: { json<T>(): T }) =>
      r
        .json<{ items: Array<{ metadata: { name: string } }> }>()
        .items.map((s) => s.metadata.name)
        .sort();
    expect(names(online)).toContain('web');
    await api.stop();
    await until(() => hub.health.overall() === 'down', 'the hub to see upstream down');
    const offline = await call(`${hubUrl}${SERVICES}`, { headers });
    expect(offline.status).toBe(200);
    expect(offline.headers['x-edgebox-source']).toBe('cache');
    expect(names(offline)).toEqual(names(online));
    // coredns never listed Services: offline it gets a 503, not a list made up from another's.
    const never = await call(`${hubUrl}${SERVICES}`, { headers: { 'User-Agent': COREDNS_UA } });
    expect(never.status).toBe(503);
  });
});
