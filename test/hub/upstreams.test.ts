import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeContinue } from '../../edge-hub/local/continue-token.ts';
import { FakeApiServer } from '../apiserver/server.ts';
import { KUBELET_UA, call, startTestHub, tempDir, until } from './hub-harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fakeApi(tls = false): Promise<FakeApiServer> {
  const api = new FakeApiServer({ tls });
  await api.start();
  cleanups.push(() => api.close());
  return api;
}

function dir(): string {
  const d = tempDir('hub-up-');
  cleanups.push(d.remove);
  return d.path;
}

const kubelet = { 'User-Agent': KUBELET_UA };

function pod(name: string, node = 'edge-1') {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'busybox' }] },
  };
}

describe('EdgeHub upstreams', () => {
  it('uses the kubeconfig client certificate, and forwards a client bearer token as is', async () => {
    const api = await fakeApi(true);
    api.addToken('alice-token', { user: 'alice', groups: ['system:authenticated'] });
    const hub = await startTestHub({
      upstreamKubeconfig: api.kubeconfigPath(dir()),
      dataDir: dir(),
    });
    cleanups.push(() => hub.close());
    // The kubeconfig is resolved by a child process; until then reads come from the cache.
    await until(() => hub.health.overall() === 'up', 'upstream up');

    const asHub = await call(`${hub.url}/api/v1/namespaces/default/pods`, { headers: kubelet });
    expect(asHub.status).toBe(200);
    expect(asHub.headers['x-edgebox-source']).toBe('upstream');
    const asAlice = await call(`${hub.url}/api/v1/namespaces/default/pods?limit=1`, {
      headers: { ...kubelet, Authorization: 'Bearer alice-token' },
    });
    expect(asAlice.status).toBe(200);
    const bad = await call(`${hub.url}/api/v1/namespaces/default/pods?limit=2`, {
      headers: { ...kubelet, Authorization: 'Bearer not-a-token' },
    });
    // The client's own (bad) credentials are used, never replaced by the hub's.
    expect(bad.status).toBe(401);
    const users = api.requests
      .filter((r) => r.path === '/api/v1/namespaces/default/pods')
      .map((r) => [r.query.get('limit'), r.user]);
    expect(users).toEqual([
      [null, 'kubernetes-admin'],
      ['1', 'alice'],
      ['2', undefined],
    ]);
  });

  it("adds the kubeconfig's bearer token when the client sends none", async () => {
    const api = await fakeApi(true);
    const hub = await startTestHub({
      upstreamKubeconfig: api.kubeconfigPath(dir(), { auth: 'token' }),
      dataDir: dir(),
    });
    cleanups.push(() => hub.close());
    await until(() => hub.health.overall() === 'up', 'upstream up');
    const r = await call(`${hub.url}/api/v1/nodes`, { headers: kubelet });
    expect(r.status).toBe(200);
    expect(api.requests.find((q) => q.path === '/api/v1/nodes')?.user).toBe('kubernetes-admin');
  });

  it('fails over between two servers and returns to the first when it is back', async () => {
    const first = await fakeApi();
    const second = await fakeApi();
    const hub = await startTestHub({ server: [first.url, second.url], dataDir: dir() });
    cleanups.push(() => hub.close());
    await until(() => hub.health.stateOf(second.url) === 'up', 'both servers up');
    const servedBy = (api: FakeApiServer) =>
      api.requests.filter((r) => r.path === '/api/v1/namespaces/default/pods').length;

    await call(`${hub.url}/api/v1/namespaces/default/pods`, { headers: kubelet });
    expect([servedBy(first), servedBy(second)]).toEqual([1, 0]);

    await first.stop();
    // Before the health checker notices, the request itself fails over.
    const during = await call(`${hub.url}/api/v1/namespaces/default/pods`, { headers: kubelet });
    expect(during.status).toBe(200);
    expect(during.headers['x-edgebox-source']).toBe('upstream');
    expect(servedBy(second)).toBe(1);
    await until(() => hub.health.stateOf(first.url) === 'down', 'the first server down');
    expect(hub.health.overall()).toBe('up');

    await first.start();
    await until(() => hub.health.stateOf(first.url) === 'up', 'the first server up again');
    await call(`${hub.url}/api/v1/namespaces/default/pods`, { headers: kubelet });
    expect([servedBy(first), servedBy(second)]).toEqual([2, 1]);
  });

  it('a hub that boots with upstream down serves its cache at once', async () => {
    const api = await fakeApi();
    api.store.create('pods', pod('p1'));
    api.store.create('pods', pod('p2', 'other'));
    const data = dir();
    const first = await startTestHub({ server: [api.url], dataDir: data });
    const url = (hubUrl: string) => `${hubUrl}/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1`;
    const online = await call(url(first.url), { headers: kubelet });
    expect(online.headers['x-edgebox-source']).toBe('upstream');
    await first.close();
    await api.stop();

    // Long health thresholds: the answer must not wait for them.
    const rebooted = await startTestHub({
      server: [api.url],
      dataDir: data,
      healthInterval: '1h',
      healthFailureThreshold: 10,
      healthSuccessThreshold: 10,
    });
    cleanups.push(() => rebooted.close());
    const offline = await call(url(rebooted.url), { headers: kubelet });
    // The first failure decided (boot offline = cache at once), not ten of them.
    expect(rebooted.health.overall()).toBe('down');
    expect(rebooted.health.snapshot()[0]?.consecutiveFailures).toBeLessThan(10);
    expect(offline.status).toBe(200);
    expect(offline.headers['x-edgebox-source']).toBe('cache');
    const items = offline.json<{ items: Array<{ metadata: { name: string } }> }>().items;
    expect(items.map((i) => i.metadata.name)).toEqual(['p1']);
  });

  it('a hub that boots offline with a kubeconfig serves its cache before the credentials resolve', async () => {
    const api = await fakeApi();
    api.store.create('pods', pod('p1'));
    const data = dir();
    const first = await startTestHub({ server: [api.url], dataDir: data });
    const url = (hubUrl: string) => `${hubUrl}/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1`;
    expect((await call(url(first.url), { headers: kubelet })).headers['x-edgebox-source']).toBe(
      'upstream',
    );
    await first.close();
    await api.stop();

    // An exec credential plugin that takes longer than the resolver allows
    // (10 s): the first request must not wait for it.
    const kubeconfig = join(dir(), 'kubeconfig.yaml');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: edge',
        'contexts: [{name: edge, context: {cluster: c, user: slow}}]',
        `clusters: [{name: c, cluster: {server: "${api.url}"}}]`,
        'users:',
        '- name: slow',
        '  user:',
        '    exec:',
        '      apiVersion: client.authentication.k8s.io/v1',
        '      command: /bin/sh',
        '      args: ["-c", "sleep 30"]',
        '      interactiveMode: Never',
        '',
      ].join('\n'),
    );
    const rebooted = await startTestHub({ upstreamKubeconfig: kubeconfig, dataDir: data });
    cleanups.push(() => rebooted.close());
    const offline = await call(url(rebooted.url), { headers: kubelet });
    // Answered while the resolver still runs: no server seen up or down, no failure counted.
    expect(rebooted.health.overall()).toBe('unknown');
    expect(rebooted.health.snapshot()[0]?.consecutiveFailures).toBe(0);
    expect(offline.status).toBe(200);
    expect(offline.headers['x-edgebox-source']).toBe('cache');
    const items = offline.json<{ items: Array<{ metadata: { name: string } }> }>().items;
    expect(items.map((i) => i.metadata.name)).toEqual(['p1']);
  });

  it('a page of an offline list asked for once upstream is back gets 410 Expired, not forwarded', async () => {
    const api = await fakeApi();
    const hub = await startTestHub({ server: [api.url], dataDir: dir() });
    cleanups.push(() => hub.close());
    await until(() => hub.health.overall() === 'up', 'upstream up');
    const token = encodeContinue('42', 'default/p1');
    const page = await call(`${hub.url}/api/v1/pods?limit=1&continue=${token}`, {
      headers: kubelet,
    });
    // kube-apiserver would call the hub's token malformed (400); client-go relists on 410.
    expect(page.status).toBe(410);
    expect(page.json()).toMatchObject({ kind: 'Status', reason: 'Expired', code: 410 });
    expect(api.requests.filter((r) => r.path === '/api/v1/pods')).toEqual([]);
  });

  it('counts failed proxied requests and reports the state in metrics', async () => {
    const api = await fakeApi();
    const hub = await startTestHub({
      server: [api.url],
      dataDir: dir(),
      healthInterval: '1h',
      healthFailureThreshold: 2,
    });
    cleanups.push(() => hub.close());
    await until(() => hub.health.overall() === 'up', 'upstream up');
    await api.stop();
    // Probes are an hour apart: only the failing requests can mark it down.
    await call(`${hub.url}/api/v1/pods`, { headers: kubelet });
    expect(hub.health.overall()).toBe('up');
    await call(`${hub.url}/api/v1/pods`, { headers: kubelet });
    expect(hub.health.overall()).toBe('down');
    const metrics = await call(`${hub.url}/metrics`);
    expect(metrics.body).toContain(`edgebox_hub_upstream_up{server="${api.url}"} 0`);
    expect(metrics.body).toContain(`edgebox_hub_upstream_failures_total{server="${api.url}"} 2`);
  });

  it('a link gone silent: waiting reads are answered from the cache once the server is marked down', async () => {
    const api = await fakeApi();
    api.store.create('pods', pod('p1'));
    const hub = await startTestHub({
      server: [api.url],
      dataDir: dir(),
      healthInterval: '100ms',
      healthTimeout: '300ms',
      healthFailureThreshold: 2,
    });
    cleanups.push(() => hub.close());
    const url = `${hub.url}/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1`;
    expect((await call(url, { headers: kubelet })).headers['x-edgebox-source']).toBe('upstream');
    await hub.remote.drain();
    // Every request (probes included) now waits far longer than the test.
    api.faults.latencyMs = 30_000;
    const r = await call(url, { headers: kubelet });
    // Not upstream's answer 30 s later: the cache's, once two failed probes marked it down.
    expect(r.status).toBe(200);
    expect(r.headers['x-edgebox-source']).toBe('cache');
    expect(hub.health.overall()).toBe('down');
  });
});
