import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CoreV1Api,
  KubeConfig,
  makeInformer,
  Watch,
  type Informer,
  type ObjectCache,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from './server.ts';

/**
 * @kubernetes/client-node v2 (informers, Watch, typed API) against the
 * double over HTTPS with a client certificate: list then watch, resuming a
 * cut watch from the last resourceVersion, re-listing after 410, bookmarks,
 * and chunked lists.
 */

const NS = 'informers';

describe('@kubernetes/client-node against the double', () => {
  const api = new FakeApiServer({ tls: true, historyLimit: 20, bookmarkIntervalMs: 100 });
  let dir: string;
  let kc: KubeConfig;
  let core: CoreV1Api;
  const informers: Array<Informer<V1ConfigMap>> = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgebox-client-node-'));
    await api.start();
    kc = new KubeConfig();
    kc.loadFromFile(api.kubeconfigPath(dir));
    core = kc.makeApiClient(CoreV1Api);
    api.store.create('namespaces', { metadata: { name: NS } });
  });
  afterEach(async () => {
    for (const inf of informers.splice(0)) await inf.stop();
  });
  afterAll(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  const configMapInformer = (
    labelSelector?: string,
  ): Informer<V1ConfigMap> & ObjectCache<V1ConfigMap> => {
    const inf = makeInformer<V1ConfigMap>(
      kc,
      `/api/v1/namespaces/${NS}/configmaps`,
      () =>
        core.listNamespacedConfigMap(
          labelSelector === undefined ? { namespace: NS } : { namespace: NS, labelSelector },
        ),
      labelSelector,
    );
    informers.push(inf);
    return inf;
  };

  /** Resolves when `event` fires for an object named `name`. */
  const seen = (
    inf: Informer<V1ConfigMap>,
    event: 'add' | 'update' | 'delete',
    name: string,
  ): Promise<V1ConfigMap> =>
    new Promise((resolve) => {
      const cb = (obj: V1ConfigMap) => {
        if (obj.metadata?.name === name) {
          inf.off(event, cb);
          resolve(obj);
        }
      };
      inf.on(event, cb);
    });

  const watchRequests = () =>
    api.requests.filter(
      (r) => r.verb === 'watch' && r.path === `/api/v1/namespaces/${NS}/configmaps`,
    );
  const listRequests = () =>
    api.requests.filter(
      (r) => r.verb === 'list' && r.path === `/api/v1/namespaces/${NS}/configmaps`,
    );

  it('lists then watches: the cache fills and add/update/delete fire', async () => {
    api.store.create('configmaps', {
      metadata: { name: 'before', namespace: NS },
      data: { v: '1' },
    });
    const inf = configMapInformer();
    const addedBefore = seen(inf, 'add', 'before');
    await inf.start();
    await addedBefore;
    await api.requestLog.waitFor(
      (r) => r.verb === 'watch' && r.path === `/api/v1/namespaces/${NS}/configmaps`,
    );
    const added = seen(inf, 'add', 'after');
    api.store.create('configmaps', { metadata: { name: 'after', namespace: NS } });
    await added;
    const updated = seen(inf, 'update', 'before');
    api.store.patch('configmaps', 'before', NS, 'merge', { data: { v: '2' } });
    expect((await updated).data).toEqual({ v: '2' });
    const deleted = seen(inf, 'delete', 'after');
    api.store.delete('configmaps', 'after', NS);
    await deleted;
    expect(
      inf
        .list(NS)
        .map((c) => c.metadata?.name)
        .sort(),
    ).toEqual(['before', 'kube-root-ca.crt']);
  });

  it('resumes a cut watch from the last resourceVersion without re-listing', async () => {
    const inf = configMapInformer();
    const errors: unknown[] = [];
    inf.on('error', (err) => {
      errors.push(err);
      // client-node leaves restarting to the caller; start() keeps the last resourceVersion.
      void inf.start();
    });
    await inf.start();
    await api.requestLog.waitFor(
      (r) => r.verb === 'watch' && r.path === `/api/v1/namespaces/${NS}/configmaps`,
    );
    const changed = seen(inf, 'add', 'resume-1');
    api.store.create('configmaps', { metadata: { name: 'resume-1', namespace: NS } });
    const lastRV = (await changed).metadata?.resourceVersion;
    const lists = listRequests().length;
    const watches = watchRequests().length;
    const rewatch = api.requestLog.waitForNext(
      (r) =>
        r.verb === 'watch' &&
        r.path === `/api/v1/namespaces/${NS}/configmaps` &&
        r.query.get('resourceVersion') === lastRV,
    );
    expect(
      api.faults.cutWatches((r) => r.path === `/api/v1/namespaces/${NS}/configmaps`),
    ).toBeGreaterThan(0);
    await rewatch;
    expect(errors.length).toBeGreaterThan(0);
    expect(listRequests().length).toBe(lists);
    expect(watchRequests().length).toBeGreaterThan(watches);
    const next = seen(inf, 'add', 'resume-2');
    api.store.create('configmaps', { metadata: { name: 'resume-2', namespace: NS } });
    await next;
  });

  it('re-lists after 410 when the history is exhausted, and ends up consistent', async () => {
    const inf = configMapInformer();
    await inf.start();
    await api.requestLog.waitFor(
      (r) => r.verb === 'watch' && r.path === `/api/v1/namespaces/${NS}/configmaps`,
    );
    const lists = listRequests().length;
    const lastWatchRV = watchRequests().at(-1)?.query.get('resourceVersion');
    let markUp: () => void = () => undefined;
    const serverUp = new Promise<void>((resolve) => (markUp = resolve));
    inf.on('error', () => void serverUp.then(() => inf.start()));
    await api.stop();
    // While the client cannot reach the server, more changes happen than the history keeps.
    for (let i = 0; i < 30; i++)
      api.store.create('configmaps', { metadata: { name: `gap-${i}`, namespace: NS } });
    api.store.delete('configmaps', 'resume-1', NS);
    const relisted = api.requestLog.waitForNext(
      (r) => r.verb === 'list' && r.path === `/api/v1/namespaces/${NS}/configmaps`,
      20_000,
    );
    const lastGap = seen(inf, 'add', 'gap-29');
    const gone = seen(inf, 'delete', 'resume-1');
    await api.start();
    const mark = api.requests.length;
    markUp();
    await relisted;
    // The client first tried to resume from its last resourceVersion and was told 410.
    const resumed = api.requests
      .slice(mark)
      .find((r) => r.verb === 'watch' && r.query.get('resourceVersion') === lastWatchRV);
    expect(resumed?.status).toBe(200);
    await Promise.all([lastGap, gone]);
    expect(listRequests().length).toBeGreaterThan(lists);
    const names = inf.list(NS).map((c) => c.metadata?.name ?? '');
    expect(names).toHaveLength(api.store.list('configmaps', { namespace: NS }).length);
    expect(names).not.toContain('resume-1');
  }, 30_000);

  it('receives BOOKMARK events when it asks for them', async () => {
    const watch = new Watch(kc);
    const rv = api.store.resourceVersion;
    const bookmark = new Promise<{ metadata?: { resourceVersion?: string } }>((resolve, reject) => {
      void watch
        .watch(
          `/api/v1/namespaces/${NS}/configmaps`,
          { allowWatchBookmarks: true, resourceVersion: rv },
          (phase, obj: { metadata?: { resourceVersion?: string } }) => {
            if (phase === 'BOOKMARK') resolve(obj);
          },
          (err) => {
            if (err !== null && err !== undefined)
              reject(err instanceof Error ? err : new Error(String(err)));
          },
        )
        .then((controller) => bookmark.finally(() => controller.abort()));
    });
    const b = await bookmark;
    expect(b.metadata?.resourceVersion).toBe(api.store.resourceVersion);
  });

  it('reads a list in chunks with limit and continue', async () => {
    api.store.create('namespaces', { metadata: { name: 'chunked' } });
    for (let i = 0; i < 9; i++) {
      api.store.create('configmaps', {
        metadata: { name: `item-${String(i).padStart(2, '0')}`, namespace: 'chunked' },
      });
    }
    const seenNames: string[] = [];
    let cont: string | undefined;
    let pages = 0;
    let firstRV: string | undefined;
    do {
      const page = await core.listNamespacedConfigMap({
        namespace: 'chunked',
        limit: 4,
        ...(cont === undefined ? {} : { _continue: cont }),
      });
      firstRV ??= page.metadata?.resourceVersion;
      expect(page.metadata?.resourceVersion).toBe(firstRV);
      seenNames.push(...page.items.map((c) => c.metadata?.name ?? ''));
      cont = page.metadata?._continue;
      pages++;
      if (pages === 1) {
        expect(page.metadata?.remainingItemCount).toBe(6);
        api.store.create('configmaps', { metadata: { name: 'item-99', namespace: 'chunked' } });
      }
    } while (cont !== undefined && cont !== '');
    expect(pages).toBe(3);
    expect(seenNames).toEqual([
      ...Array.from({ length: 9 }, (_, i) => `item-0${i}`),
      'kube-root-ca.crt',
    ]);
  });

  it('typed calls get Kubernetes errors with the Status body', async () => {
    await expect(
      core.readNamespacedConfigMap({ name: 'missing', namespace: NS }),
    ).rejects.toMatchObject({
      code: 404,
    });
    const created = await core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: 'typed' } },
    });
    expect(created.metadata?.uid).toBeDefined();
    await expect(
      core.replaceNamespacedConfigMap({
        name: 'typed',
        namespace: NS,
        body: { metadata: { name: 'typed', resourceVersion: '1' }, data: { a: 'b' } },
      }),
    ).rejects.toMatchObject({ code: 409 });
  });
});
