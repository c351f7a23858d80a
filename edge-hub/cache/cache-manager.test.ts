import { rm } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createMetricsRegistry } from '../../src/metrics.ts';
import { silentLogger } from '../../src/log.ts';
import { CacheManager } from './cache-manager.ts';
import { objectId, splitObjectId, type ResourceRef } from './keys.ts';
import {
  hubRequest,
  JSON_HEADERS,
  list,
  pod,
  record,
  tempDataDir,
  watchEvent,
} from './recording-fixtures.ts';

const PODS: ResourceRef = { group: '', version: 'v1', resource: 'pods' };
const SECRETS: ResourceRef = { group: '', version: 'v1', resource: 'secrets' };

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

async function cachedPods(component = 'kubelet', ref = PODS): Promise<Record<string, string>> {
  const entry = cache.store.entry(component, ref);
  if (entry === undefined) return {};
  const state = await cache.store.stateOf(entry);
  const out: Record<string, string> = {};
  for (const [id, meta] of state.meta) out[splitObjectId(id).name] = meta.rv;
  return out;
}

function scopeOf(component: string, ref: ResourceRef, id: string) {
  return cache.store.entry(component, ref)?.scopes.get(id);
}

const NODE_A_PODS = '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a';
const NODE_A_SCOPE = '||spec.nodeName="node-a"';

describe('list replacement', () => {
  it('replaces exactly the scope: objects gone upstream disappear', async () => {
    const req = hubRequest('kubelet', 'GET', NODE_A_PODS);
    await record(
      cache,
      req,
      list('PodList', '10', [pod('a', { rv: '5' }), pod('b', { rv: '6' }), pod('c', { rv: '7' })]),
    );
    expect(await cachedPods()).toEqual({ a: '5', b: '6', c: '7' });
    await record(
      cache,
      req,
      list('PodList', '20', [pod('a', { rv: '5' }), pod('c', { rv: '15' })]),
    );
    expect(await cachedPods()).toEqual({ a: '5', c: '15' });
    expect(scopeOf('kubelet', PODS, NODE_A_SCOPE)).toMatchObject({ rv: '20', complete: true });
  });

  it('keeps an object another scope of the same component still covers', async () => {
    const byNode = hubRequest('kubelet', 'GET', NODE_A_PODS);
    const byLabel = hubRequest(
      'kubelet',
      'GET',
      '/api/v1/namespaces/default/pods?labelSelector=app%3Dweb',
    );
    await record(
      cache,
      byNode,
      list('PodList', '10', [pod('a', { rv: '5', labels: { app: 'web' } })]),
    );
    await record(
      cache,
      byLabel,
      list('PodList', '11', [pod('a', { rv: '5', labels: { app: 'web' } })]),
    );
    await record(cache, byNode, list('PodList', '12', []));
    expect(await cachedPods()).toEqual({ a: '5' });
    await record(cache, byLabel, list('PodList', '13', []));
    expect(await cachedPods()).toEqual({});
  });

  it('caches an empty list as a complete, empty scope', async () => {
    await record(cache, hubRequest('kubelet', 'GET', NODE_A_PODS), list('PodList', '30', []));
    expect(scopeOf('kubelet', PODS, NODE_A_SCOPE)).toMatchObject({ rv: '30', complete: true });
    expect(await cachedPods()).toEqual({});
  });

  it('assembles a chunked list from its pages and replaces only after the last one', async () => {
    const first = hubRequest('kubelet', 'GET', '/api/v1/pods?limit=2');
    await record(
      cache,
      first,
      list('PodList', '40', [pod('a', { rv: '1' }), pod('b', { rv: '2' })], 'tok1'),
    );
    expect(await cachedPods()).toEqual({});
    const second = hubRequest('kubelet', 'GET', '/api/v1/pods?limit=2&continue=tok1');
    await record(cache, second, list('PodList', '40', [pod('c', { rv: '3' })]));
    expect(await cachedPods()).toEqual({ a: '1', b: '2', c: '3' });
    // A page that does not follow the one before is not recorded.
    const stray = hubRequest('kubelet', 'GET', '/api/v1/pods?limit=2&continue=unknown');
    await record(cache, stray, list('PodList', '41', []));
    expect(await cachedPods()).toEqual({ a: '1', b: '2', c: '3' });
  });

  it('leaves the store unchanged on invalid JSON, a body cut mid-list, or an aborted body', async () => {
    const req = hubRequest('kubelet', 'GET', NODE_A_PODS);
    await record(cache, req, list('PodList', '10', [pod('a', { rv: '5' })]));
    const full = list('PodList', '20', [pod('b', { rv: '6' })]);
    await record(cache, req, full.subarray(0, full.length - 20));
    await record(cache, req, '{"kind":"PodList","items":[{"metadata":');
    await record(cache, req, '<html>bad gateway</html>');
    const aborted = cache.recorder(req, 200, { 'content-type': 'application/json' });
    aborted?.write(full);
    aborted?.abort('client went away');
    await aborted?.end();
    expect(await cachedPods()).toEqual({ a: '5' });
    expect(scopeOf('kubelet', PODS, NODE_A_SCOPE)).toMatchObject({ rv: '10' });
  });

  it('decodes gzip-compressed answers', async () => {
    const req = hubRequest('kubelet', 'GET', NODE_A_PODS);
    const body = gzipSync(list('PodList', '10', [pod('z', { rv: '9' })]));
    await record(cache, req, body, 200, {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    });
    expect(await cachedPods()).toEqual({ z: '9' });
  });
});

describe('resourceVersion ordering', () => {
  it('never lets an older version overwrite a newer one', async () => {
    const req = hubRequest('kubelet', 'GET', NODE_A_PODS);
    await record(cache, req, list('PodList', '100', [pod('a', { rv: '90' })]));
    const watch = hubRequest('kubelet', 'GET', `${NODE_A_PODS}&watch=true&resourceVersion=100`);
    await record(
      cache,
      watch,
      watchEvent('MODIFIED', { kind: 'Pod', apiVersion: 'v1', ...pod('a', { rv: '120' }) }),
    );
    // A list served from a lagging cache still carries the old copy.
    await record(cache, req, list('PodList', '110', [pod('a', { rv: '90' })]));
    expect(await cachedPods()).toEqual({ a: '120' });
    await record(
      cache,
      hubRequest('kubelet', 'GET', '/api/v1/namespaces/default/pods/a'),
      JSON.stringify({ kind: 'Pod', apiVersion: 'v1', ...pod('a', { rv: '100' }) }),
    );
    expect(await cachedPods()).toEqual({ a: '120' });
    // '9' < '10' as integers even though '9' > '10' as strings.
    await record(
      cache,
      watch,
      watchEvent('MODIFIED', { kind: 'Pod', apiVersion: 'v1', ...pod('b', { rv: '10' }) }),
    );
    await record(
      cache,
      watch,
      watchEvent('MODIFIED', { kind: 'Pod', apiVersion: 'v1', ...pod('b', { rv: '9' }) }),
    );
    expect((await cachedPods()).b).toBe('10');
  });

  it('does not resurrect a deleted object from a stale list', async () => {
    const req = hubRequest('kubelet', 'GET', NODE_A_PODS);
    await record(cache, req, list('PodList', '100', [pod('a', { rv: '90' })]));
    const watch = hubRequest('kubelet', 'GET', `${NODE_A_PODS}&watch=true&resourceVersion=100`);
    await record(
      cache,
      watch,
      watchEvent('DELETED', { kind: 'Pod', apiVersion: 'v1', ...pod('a', { rv: '130' }) }),
    );
    expect(await cachedPods()).toEqual({});
    await record(cache, req, list('PodList', '110', [pod('a', { rv: '90' })]));
    expect(await cachedPods()).toEqual({});
  });
});

describe('watch recording', () => {
  it('applies events as they stream, skips ERROR, and takes BOOKMARK versions', async () => {
    const req = hubRequest('kubelet', 'GET', NODE_A_PODS);
    await record(cache, req, list('PodList', '10', [pod('a', { rv: '5' })]));
    const watch = hubRequest('kubelet', 'GET', `${NODE_A_PODS}&watch=true&resourceVersion=10`);
    const recorder = cache.recorder(watch, 200, { 'content-type': 'application/json' });
    if (recorder === undefined) throw new Error('watch not recorded');
    const added = watchEvent('ADDED', { kind: 'Pod', apiVersion: 'v1', ...pod('b', { rv: '11' }) });
    // An event split across chunks is applied once whole.
    recorder.write(Buffer.from(added.slice(0, 30)));
    recorder.write(Buffer.from(added.slice(30)));
    recorder.write(
      Buffer.from(
        watchEvent('DELETED', { kind: 'Pod', apiVersion: 'v1', ...pod('a', { rv: '12' }) }),
      ),
    );
    recorder.write(
      Buffer.from(
        watchEvent('ERROR', {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          code: 410,
          reason: 'Expired',
        }),
      ),
    );
    recorder.write(
      Buffer.from(
        watchEvent('BOOKMARK', {
          kind: 'Pod',
          apiVersion: 'v1',
          metadata: { resourceVersion: '15' },
        }),
      ),
    );
    await recorder.end();
    expect(await cachedPods()).toEqual({ b: '11' });
    expect(scopeOf('kubelet', PODS, NODE_A_SCOPE)).toMatchObject({ rv: '15', complete: true });
  });

  it('records objects of a watch whose list it never saw, without marking the scope complete', async () => {
    const watch = hubRequest('kube-proxy', 'GET', '/api/v1/services?watch=1&resourceVersion=50');
    const svc = {
      kind: 'Service',
      apiVersion: 'v1',
      metadata: { name: 's', namespace: 'default', resourceVersion: '51' },
    };
    await record(cache, watch, watchEvent('ADDED', svc));
    const services = { group: '', version: 'v1', resource: 'services' };
    expect(cache.store.readObject('kube-proxy', services, objectId('default', 's'))).toBeDefined();
    expect(scopeOf('kube-proxy', services, '||')).toMatchObject({ complete: false });
  });
});

describe('objects, partitioning and tokens', () => {
  it('partitions by component: a Secret kubelet received is not visible to kube-proxy', async () => {
    const secret = {
      kind: 'Secret',
      apiVersion: 'v1',
      metadata: { name: 'db', namespace: 'default', resourceVersion: '3' },
      data: { p: 'eA==' },
    };
    await record(
      cache,
      hubRequest('kubelet', 'GET', '/api/v1/namespaces/default/secrets/db'),
      JSON.stringify(secret),
    );
    expect(cache.store.readObject('kubelet', SECRETS, objectId('default', 'db'))).toBeDefined();
    expect(
      cache.store.readObject('kube-proxy', SECRETS, objectId('default', 'db')),
    ).toBeUndefined();
  });

  it('drops an object when upstream answers its GET with 404', async () => {
    await record(
      cache,
      hubRequest('kubelet', 'GET', NODE_A_PODS),
      list('PodList', '10', [pod('a', { rv: '5' })]),
    );
    const notFound = JSON.stringify({
      kind: 'Status',
      apiVersion: 'v1',
      code: 404,
      reason: 'NotFound',
    });
    await record(
      cache,
      hubRequest('kubelet', 'GET', '/api/v1/namespaces/default/pods/a'),
      notFound,
      404,
    );
    expect(await cachedPods()).toEqual({});
  });

  it('records the objects the node Lease and node status writes return', async () => {
    const lease = {
      kind: 'Lease',
      apiVersion: 'coordination.k8s.io/v1',
      metadata: { name: 'node-a', namespace: 'kube-node-lease', resourceVersion: '77' },
      spec: { holderIdentity: 'node-a' },
    };
    const put = hubRequest(
      'kubelet',
      'PUT',
      '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-a',
      lease,
    );
    expect(cache.isCacheable(put)).toBe(true);
    await record(cache, put, JSON.stringify(lease));
    const leases = { group: 'coordination.k8s.io', version: 'v1', resource: 'leases' };
    expect(
      cache.store.readObject('kubelet', leases, objectId('kube-node-lease', 'node-a'))?.toString(),
    ).toContain('"77"');
    const node = {
      kind: 'Node',
      apiVersion: 'v1',
      metadata: { name: 'node-a', resourceVersion: '78' },
      status: {},
    };
    await record(
      cache,
      hubRequest('kubelet', 'PATCH', '/api/v1/nodes/node-a/status', '{}'),
      JSON.stringify(node),
    );
    const nodes = { group: '', version: 'v1', resource: 'nodes' };
    expect(cache.store.readObject('kubelet', nodes, objectId('', 'node-a'))).toBeDefined();
  });

  it('never caches reviews, CSRs or other writes', () => {
    const never = [
      hubRequest('kubelet', 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', '{}'),
      hubRequest('kubelet', 'POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', '{}'),
      hubRequest('kubelet', 'GET', '/apis/certificates.k8s.io/v1/certificatesigningrequests'),
      hubRequest('kubelet', 'POST', '/api/v1/namespaces/default/pods', '{}'),
      hubRequest('kubelet', 'GET', '/api/v1/namespaces/default/pods/a/log'),
    ];
    for (const req of never) expect(cache.isCacheable(req)).toBe(false);
    expect(cache.isCacheable(hubRequest('kubelet', 'GET', '/apis/example.com/v1/widgets'))).toBe(
      true,
    );
  });

  it('keeps what it recorded across a restart and reports it in summary() and metrics', async () => {
    const registry = createMetricsRegistry();
    await record(
      cache,
      hubRequest('kubelet', 'GET', NODE_A_PODS),
      list('PodList', '10', [pod('a', { rv: '5' }), pod('b', { rv: '6' })]),
    );
    await cache.close();
    cache = await CacheManager.open({ dataDir: `${dir}/hub`, log: silentLogger(), registry });
    expect(await cachedPods()).toEqual({ a: '5', b: '6' });
    const rows = await cache.summary();
    expect(rows).toEqual([
      {
        component: 'kubelet',
        resource: 'pods',
        objects: 2,
        lastSync: expect.any(String) as string,
      },
    ]);
    await record(
      cache,
      hubRequest('kubelet', 'GET', NODE_A_PODS),
      list('PodList', '11', [pod('a', { rv: '5' })]),
    );
    const text = await registry.metrics();
    expect(text).toContain('edgebox_hub_cached_objects{component="kubelet",resource="pods"} 1');
    expect(text).toMatch(/edgebox_hub_store_write_duration_seconds_count [1-9]/);
    expect(text).toMatch(/edgebox_hub_store_batch_operations_count [1-9]/);
  });
});

describe('answers that change nothing', () => {
  /** Counts synced LevelDB batches from now on. */
  function countCommits(): { count: () => number } {
    let commits = 0;
    cache.store.setMetrics({ observeCommit: () => (commits += 1) });
    return { count: () => commits };
  }

  const POD_A = '/api/v1/namespaces/default/pods/a';
  const podA = (rv: string) =>
    `${JSON.stringify({ kind: 'Pod', apiVersion: 'v1', ...pod('a', { rv }) })}\n`;
  let now = Date.parse('2026-01-01T00:00:00Z');
  const reopen = async (bookkeepingFlushMs?: number) => {
    await cache.close();
    cache = await CacheManager.open({
      dataDir: `${dir}/hub`,
      log: silentLogger(),
      clock: () => now,
      bookkeepingFlushMs,
    });
  };
  const lastSync = async () => (await cache.summary())[0]?.lastSync;

  it('costs no synced write when a GET answers what is already stored', async () => {
    await reopen();
    const get = hubRequest('kubelet', 'GET', POD_A);
    await record(cache, get, podA('5'));
    const commits = countCommits();
    const upserts = vi.spyOn(cache.store, 'upsertObject');
    now += 60_000;
    for (let i = 0; i < 100; i++) await record(cache, get, podA('5'));
    expect(commits.count()).toBe(0);
    // Recognised by its bytes: not even parsed and queued.
    expect(upserts).not.toHaveBeenCalled();
    expect(await lastSync()).toBe(new Date(now).toISOString());
    // A newer version is a real write again.
    await record(cache, get, podA('6'));
    expect(commits.count()).toBe(1);
    expect(await cachedPods()).toEqual({ a: '6' });
  });

  it('still recognises a repeated GET when another object of its resource was written meanwhile', async () => {
    const get = hubRequest('kubelet', 'GET', POD_A);
    await record(cache, get, podA('5'));
    const upserts = vi.spyOn(cache.store, 'upsertObject');
    // The answer starts (the stored copy is read), another pod is written, then it ends.
    const answer = cache.recorder(get, 200, JSON_HEADERS);
    answer?.write(Buffer.from(podA('5')));
    const other = hubRequest('kubelet', 'GET', '/api/v1/namespaces/default/pods/b');
    await record(cache, other, JSON.stringify({ kind: 'Pod', ...pod('b', { rv: '7' }) }));
    upserts.mockClear();
    await answer?.end();
    expect(upserts).not.toHaveBeenCalled();
    expect(await cachedPods()).toEqual({ a: '5', b: '7' });
  });

  it('compares a repeated GET with the object as stored now, read from LevelDB once while its resource is unchanged', async () => {
    const get = hubRequest('kubelet', 'GET', POD_A);
    await record(cache, get, podA('5'));
    await record(cache, get, podA('7'));
    const upserts = vi.spyOn(cache.store, 'upsertObject');
    const reads = vi.spyOn(cache.store, 'readObject');
    // Compared with version 7, as stored now, not with the copy read when 5 was stored.
    await record(cache, get, podA('7'));
    expect(upserts).not.toHaveBeenCalled();
    // Nothing written since: the copy read for the last answer serves this one.
    await record(cache, get, podA('7'));
    expect(reads).toHaveBeenCalledTimes(1);
    expect(upserts).not.toHaveBeenCalled();
    expect(await cachedPods()).toEqual({ a: '7' });
  });

  it('costs no synced write for a 404 of an object never cached, or a LIST answered alike', async () => {
    const listReq = hubRequest('kubelet', 'GET', NODE_A_PODS);
    const items = [pod('a', { rv: '5' }), pod('b', { rv: '6' })];
    await record(cache, listReq, list('PodList', '10', items));
    const commits = countCommits();
    await record(cache, listReq, list('PodList', '10', items));
    const missing = hubRequest('kubelet', 'GET', '/api/v1/namespaces/default/pods/nope');
    await record(cache, missing, '{"kind":"Status","code":404}', 404);
    expect(commits.count()).toBe(0);
    expect(scopeOf('kubelet', PODS, NODE_A_SCOPE)).toMatchObject({ rv: '10', complete: true });
  });

  it('recognises a LIST answered again byte for byte, until anything else touches the resource', async () => {
    const listReq = hubRequest('kubelet', 'GET', NODE_A_PODS);
    const body = list('PodList', '10', [pod('a', { rv: '5' })]);
    await record(cache, listReq, body);
    const replaces = vi.spyOn(cache.store, 'replaceList');
    await record(cache, listReq, body);
    expect(replaces).not.toHaveBeenCalled();
    const watch = hubRequest('kubelet', 'GET', `${NODE_A_PODS}&watch=true&resourceVersion=10`);
    await record(
      cache,
      watch,
      watchEvent('ADDED', { kind: 'Pod', apiVersion: 'v1', ...pod('b', { rv: '11' }) }),
    );
    // The same bytes no longer describe what is cached: the list is applied again.
    await record(cache, listReq, body);
    expect(replaces).toHaveBeenCalledTimes(1);
    // A large answer is recognised by its digest.
    const big = list(
      'PodList',
      '12',
      Array.from({ length: 20 }, (_, i) => ({
        ...pod(`big-${i}`, { rv: '12', node: 'node-b' }),
        padding: 'x'.repeat(5000),
      })),
    );
    expect(big.length).toBeGreaterThan(64 * 1024);
    const bigReq = hubRequest(
      'kubelet',
      'GET',
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-b',
    );
    await record(cache, bigReq, big);
    await record(cache, bigReq, big);
    expect(replaces).toHaveBeenCalledTimes(2);
  });

  it("moves a LIST scope's syncedAt when the same list is answered again, and syncs it on close", async () => {
    await reopen();
    const listReq = hubRequest('kubelet', 'GET', NODE_A_PODS);
    const body = list('PodList', '10', [pod('a', { rv: '5' })]);
    await record(cache, listReq, body);
    const commits = countCommits();
    now += 60_000;
    await record(cache, listReq, body);
    expect(commits.count()).toBe(0);
    await reopen();
    expect(scopeOf('kubelet', PODS, NODE_A_SCOPE)).toMatchObject({
      rv: '10',
      complete: true,
      syncedAt: new Date(now).toISOString(),
    });
  });

  it('syncs at once a scope that became complete, even with no object in it', async () => {
    const commits = countCommits();
    await record(cache, hubRequest('kubelet', 'GET', NODE_A_PODS), list('PodList', '30', []));
    expect(commits.count()).toBe(1);
  });

  it('syncs bookkeeping alone after the flush delay, and on close', async () => {
    await reopen(20);
    const get = hubRequest('kubelet', 'GET', POD_A);
    await record(cache, get, podA('5'));
    const flushed = new Promise<void>((resolve) =>
      cache.store.setMetrics({ observeCommit: () => resolve() }),
    );
    now += 60_000;
    const first = new Date(now).toISOString();
    await record(cache, get, podA('5'));
    // Nothing else is written: the flush delay syncs it on its own.
    await flushed;
    await reopen();
    expect(await lastSync()).toBe(first);
    now += 60_000;
    await record(cache, get, podA('5'));
    await reopen();
    expect(await lastSync()).toBe(new Date(now).toISOString());
  });
});
