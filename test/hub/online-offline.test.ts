import { makeInformer, type V1ConfigMap } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunningHub } from '../../edge-hub/hub.ts';
import {
  KUBECTL_UA,
  KUBELET_UA,
  call,
  hubCoreApi,
  hubKubeConfig,
  openWatch,
  startApiAndHub,
  until,
} from './hub-harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(cacheAgents?: string[]) {
  return startApiAndHub(cleanups, cacheAgents === undefined ? {} : { cacheAgents });
}

function configMap(name: string, labels: Record<string, string>) {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'default', labels } };
}

function names(list: { items: Array<{ metadata?: { name?: string } }> }): string[] {
  return list.items.map((i) => i.metadata?.name ?? '').sort();
}

async function upstreamState(hub: RunningHub, state: string): Promise<void> {
  await until(() => hub.health.overall() === state, `upstream ${state}`);
}

describe('EdgeHub online and offline', () => {
  it('keeps a client-node informer working through an outage, with selectors and source headers', async () => {
    const { api, hub } = await setup();
    api.store.create('configmaps', configMap('cm-a', { app: 'a' }));
    api.store.create('configmaps', configMap('cm-b', { app: 'b' }));

    const kc = hubKubeConfig(hub.url, KUBELET_UA);
    const core = hubCoreApi(hub.url, KUBELET_UA);
    const informer = makeInformer<V1ConfigMap>(kc, '/api/v1/namespaces/default/configmaps', () =>
      core.listNamespacedConfigMap({ namespace: 'default' }),
    );
    const errors: unknown[] = [];
    informer.on('error', (err) => errors.push(err));
    await informer.start();
    cleanups.push(() => informer.stop());
    const cached = () =>
      informer
        .list('default')
        .map((c) => c.metadata?.name ?? '')
        .filter((n) => n.startsWith('cm-'))
        .sort();
    expect(cached()).toEqual(['cm-a', 'cm-b']);

    // Online: changes stream through the hub and are recorded.
    api.store.create('configmaps', configMap('cm-c', { app: 'a' }));
    api.store.delete('configmaps', 'cm-b', 'default');
    await until(() => cached().join() === 'cm-a,cm-c', 'the informer to see the changes');
    const online = await call(`${hub.url}/api/v1/namespaces/default/configmaps`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(online.headers['x-edgebox-source']).toBe('upstream');
    await hub.remote.drain();

    // Offline: the informer's watch moves to the cache without an error.
    await api.stop();
    await upstreamState(hub, 'down');
    await until(() => hub.local.openWatches() === 1, 'the informer to watch the cache');
    expect(cached()).toEqual(['cm-a', 'cm-c']);

    const all = await call(`${hub.url}/api/v1/namespaces/default/configmaps`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(all.status).toBe(200);
    expect(all.headers['x-edgebox-source']).toBe('cache');
    expect(names(all.json())).toEqual(expect.arrayContaining(['cm-a', 'cm-c']));
    expect(names(all.json())).not.toContain('cm-b');

    const selected = await call(
      `${hub.url}/api/v1/namespaces/default/configmaps?labelSelector=app%3Da`,
      { headers: { 'User-Agent': KUBELET_UA } },
    );
    expect(names(selected.json())).toEqual(['cm-a', 'cm-c']);
    const byField = await call(
      `${hub.url}/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dcm-c`,
      { headers: { 'User-Agent': KUBELET_UA } },
    );
    expect(names(byField.json())).toEqual(['cm-c']);
    const one = await call(`${hub.url}/api/v1/namespaces/default/configmaps/cm-a`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(one.status).toBe(200);
    expect(one.headers['x-edgebox-source']).toBe('cache');
    const gone = await call(`${hub.url}/api/v1/namespaces/default/configmaps/cm-b`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(gone.status).toBe(404);
    expect(gone.headers['x-edgebox-source']).toBe('cache');

    // Another component's cache partition is empty, and kubectl is not a cache agent.
    const kubectl = await call(`${hub.url}/api/v1/namespaces/default/configmaps`, {
      headers: { 'User-Agent': KUBECTL_UA },
    });
    expect(kubectl.status).toBe(503);
    expect(kubectl.headers['x-edgebox-source']).toBe('cache');
    const metrics = await call(`${hub.url}/metrics`);
    expect(metrics.body).toMatch(
      /edgebox_hub_requests_total\{verb="list",component="kubelet",source="cache",code="200"\} [1-9]/,
    );
    expect(metrics.body).toMatch(
      /edgebox_hub_requests_total\{verb="list",component="kubectl",source="cache",code="503"\} 1/,
    );

    // Back online: offline watches end, the informer resumes upstream and sees what changed.
    api.store.create('configmaps', configMap('cm-d', { app: 'a' }));
    await api.start();
    await upstreamState(hub, 'up');
    await until(() => cached().includes('cm-d'), 'the informer to see cm-d after the outage');
    expect(hub.local.openWatches()).toBe(0);
    expect(errors).toEqual([]);
  });

  it('answers bad selectors and malformed paths with a 400 Status, online and offline', async () => {
    const { api, hub } = await setup();
    const kubelet = { 'User-Agent': KUBELET_UA };
    const badLabel = `${hub.url}/api/v1/pods?labelSelector=${encodeURIComponent('app in (a')}`;
    const badField = `${hub.url}/api/v1/pods?fieldSelector=${encodeURIComponent('spec.color=red')}`;
    const badPath = `${hub.url}/api/v1/namespaces//pods`;
    // Online the apiserver decides; the hub refuses what it cannot route itself.
    const onlineLabel = await call(badLabel, { headers: kubelet });
    expect(onlineLabel.status).toBe(400);
    const path = await call(badPath, { headers: kubelet });
    expect(path.status).toBe(400);
    expect(path.headers['x-edgebox-source']).toBe('cache');
    expect(path.json()).toMatchObject({ kind: 'Status', code: 400, reason: 'BadRequest' });

    await call(`${hub.url}/api/v1/pods`, { headers: kubelet });
    await hub.remote.drain();
    await api.stop();
    await upstreamState(hub, 'down');
    for (const url of [badLabel, badField, badPath]) {
      const r = await call(url, { headers: kubelet });
      expect(r.status, url).toBe(400);
      expect(r.headers['x-edgebox-source']).toBe('cache');
      expect(r.json()).toMatchObject({ kind: 'Status', code: 400 });
    }
  });

  it('serves /healthz, /readyz, /metrics and /edgebox/status itself, on both listeners', async () => {
    const { api, hub } = await setup();
    await call(`${hub.url}/api/v1/namespaces/default/configmaps`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    await hub.remote.drain();
    const before = api.requests.length;
    const metricsUrl = `http://127.0.0.1:${hub.metricsAddress.port}`;
    for (const base of [hub.url, metricsUrl]) {
      const healthz = await call(`${base}/healthz`);
      expect(healthz.status).toBe(200);
      expect(healthz.headers['x-edgebox-source']).toBe('cache');
      expect((await call(`${base}/readyz`)).status).toBe(200);
      const metrics = await call(`${base}/metrics`);
      expect(metrics.body).toContain(`edgebox_hub_upstream_up{server="${api.url}"} 1`);
      expect(metrics.body).toMatch(
        /edgebox_hub_requests_total\{verb="list",component="kubelet",source="upstream",code="200"\} 1/,
      );
      expect(metrics.body).toMatch(/edgebox_hub_request_duration_seconds_bucket\{/);
      const status = (await call(`${base}/edgebox/status`)).json<{
        upstream: { state: string; servers: Array<{ name: string; state: string }> };
        cache: Array<{ component: string; resource: string; objects: number }>;
      }>();
      expect(status.upstream.state).toBe('up');
      expect(status.upstream.servers).toEqual([
        expect.objectContaining({ name: api.url, state: 'up' }),
      ]);
      expect(status.cache).toContainEqual(
        expect.objectContaining({ component: 'kubelet', resource: 'configmaps' }),
      );
    }
    // None of those reached the apiserver (health probes aside).
    expect(
      api.requests.slice(before).filter((r) => !['/readyz', '/healthz'].includes(r.path)),
    ).toEqual([]);
    const notThere = await call(`${metricsUrl}/api/v1/pods`);
    expect(notThere.status).toBe(404);
  });

  it("leaves kubectl its Table online when every client's reads are cached", async () => {
    const { api, hub } = await setup(['*']);
    api.store.create('configmaps', configMap('cm-a', {}));
    const path = `${hub.url}/api/v1/namespaces/default/configmaps`;
    const table = await call(path, {
      headers: {
        'User-Agent': KUBECTL_UA,
        Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json',
      },
    });
    expect(table.headers['x-edgebox-source']).toBe('upstream');
    expect(table.json()).toMatchObject({ kind: 'Table', apiVersion: 'meta.k8s.io/v1' });
    // `kubectl get -o yaml` asks for objects: those are cached and served offline.
    const objects = await call(path, { headers: { 'User-Agent': KUBECTL_UA } });
    expect(objects.json()).toMatchObject({ kind: 'ConfigMapList' });
    await hub.remote.drain();
    await api.stop();
    await upstreamState(hub, 'down');
    const offline = await call(path, { headers: { 'User-Agent': KUBECTL_UA } });
    expect(offline.headers['x-edgebox-source']).toBe('cache');
    expect(names(offline.json())).toContain('cm-a');
  });

  it('ends offline watches when upstream is back so clients re-list upstream', async () => {
    const { api, hub } = await setup();
    const kubelet = { 'User-Agent': KUBELET_UA };
    const list = await call(`${hub.url}/api/v1/namespaces/default/configmaps`, {
      headers: kubelet,
    });
    const rv = list.json<{ metadata: { resourceVersion: string } }>().metadata.resourceVersion;
    await hub.remote.drain();
    await api.stop();
    await upstreamState(hub, 'down');
    const w = openWatch(
      `${hub.url}/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${rv}`,
      kubelet,
    );
    await until(() => w.response() !== undefined, 'the offline watch to open');
    expect(w.response()?.headers['x-edgebox-source']).toBe('cache');
    await api.start();
    expect(await w.ended).toBe('clean');
    expect(w.events.at(-1)).toMatchObject({
      type: 'ERROR',
      object: { kind: 'Status', code: 410, reason: 'Expired' },
    });
  });
});
