import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from './server.ts';
import { WireClient } from './wire-client.ts';

describe('fault controls', () => {
  const api = new FakeApiServer();
  let wire: WireClient;
  beforeAll(async () => {
    await api.start();
    wire = new WireClient(api.url);
  });
  afterAll(() => api.close());

  it('adds latency to every request', async () => {
    api.faults.latencyMs = 150;
    const t0 = performance.now();
    const res = await wire.get('/api/v1/namespaces');
    const took = performance.now() - t0;
    api.faults.latencyMs = 0;
    expect(res.status).toBe(200);
    expect(took).toBeGreaterThanOrEqual(145);
  });

  it('fails the next N matching requests with a Status, then recovers', async () => {
    api.faults.failWith(503, 2, (r) => r.path.endsWith('/configmaps'));
    const other = await wire.get('/api/v1/namespaces');
    expect(other.status).toBe(200);
    const a = await wire.get('/api/v1/namespaces/default/configmaps');
    const b = await wire.get('/api/v1/namespaces/default/configmaps');
    const c = await wire.get('/api/v1/namespaces/default/configmaps');
    expect([a.status, b.status, c.status]).toEqual([503, 503, 200]);
    expect(a.json()).toMatchObject({ kind: 'Status', reason: 'ServiceUnavailable', code: 503 });
    api.faults.failWith(500);
    const e = await wire.get('/api/v1/namespaces');
    expect(e.json()).toMatchObject({ reason: 'InternalError', code: 500 });
  });

  it('answers with a body that is not JSON', async () => {
    api.faults.invalidJson(1);
    const res = await wire.get('/api/v1/namespaces');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(() => JSON.parse(res.text)).toThrow();
  });

  it('cuts a list body mid-items and drops the connection', async () => {
    for (let i = 0; i < 50; i++)
      api.store.create('configmaps', { metadata: { name: `cut-${i}`, namespace: 'default' } });
    api.faults.truncateBody(1, (r) => r.path === '/api/v1/namespaces/default/configmaps');
    const outcome = await wire.get('/api/v1/namespaces/default/configmaps').then(
      (r) => ({ ok: true, text: r.text }),
      (err: unknown) => ({ ok: false, text: String(err) }),
    );
    // Either the client sees the abort, or it got a body that does not parse.
    if (outcome.ok) expect(() => JSON.parse(outcome.text)).toThrow();
    else expect(outcome.text).toMatch(/aborted|hang up|ECONNRESET|terminated/i);
    const whole = await wire.get('/api/v1/namespaces/default/configmaps');
    expect(whole.json<{ items: unknown[] }>().items.length).toBeGreaterThanOrEqual(50);
  });

  it('cuts open watches without a clean end', async () => {
    const w = await wire.watch(
      `/api/v1/namespaces/default/pods?watch=1&resourceVersion=${api.store.resourceVersion}`,
    );
    await api.requestLog.waitFor((r) => r.verb === 'watch' && r.status === 200);
    expect(api.faults.openWatches).toBeGreaterThan(0);
    expect(api.faults.cutWatches()).toBeGreaterThan(0);
    expect(await w.ended).toBe('error');
    expect(api.faults.openWatches).toBe(0);
  });

  it('stop() drops connections and refuses new ones; restart() listens on the same port with the same data', async () => {
    const port = api.port;
    api.store.create('configmaps', { metadata: { name: 'survivor', namespace: 'default' } });
    const w = await wire.watch(
      `/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${api.store.resourceVersion}`,
    );
    await api.stop();
    expect(api.listening).toBe(false);
    expect(await w.ended).toBe('error');
    await expect(wire.get('/api/v1/namespaces')).rejects.toThrow(/ECONNREFUSED/);
    await api.restart();
    expect(api.port).toBe(port);
    const res = await wire.get('/api/v1/namespaces/default/configmaps/survivor');
    expect(res.status).toBe(200);
  });

  it('logs method, url, user agent, user and status of every request', async () => {
    await wire.get('/api/v1/namespaces/default/pods?limit=5', {
      'User-Agent': 'kubelet/v1.32.0 (linux/amd64) kubernetes/abc',
    });
    const record = await api.requestLog.waitFor((r) => r.userAgent.startsWith('kubelet/'));
    expect(record).toMatchObject({
      method: 'GET',
      url: '/api/v1/namespaces/default/pods?limit=5',
      path: '/api/v1/namespaces/default/pods',
      verb: 'list',
      status: 200,
      user: 'system:unsecured',
    });
    expect(record.query.get('limit')).toBe('5');
  });
});

describe('authentication on https', () => {
  const api = new FakeApiServer({ tls: true });
  beforeAll(() => api.start());
  afterAll(() => api.close());

  it('401 without credentials or with an unknown token; 200 with the admin certificate or token', async () => {
    const ca = api.caPem ?? '';
    const none = await new WireClient(api.url, { ca }).get('/api/v1/namespaces');
    expect(none.status).toBe(401);
    expect(none.json()).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Unauthorized',
      reason: 'Unauthorized',
      code: 401,
    });
    expect((await new WireClient(api.url, { ca, token: 'nope' }).get('/version')).status).toBe(401);
    expect(
      (await new WireClient(api.url, { ca, token: api.adminToken }).get('/version')).status,
    ).toBe(200);
    const cert = api.adminCertificate;
    const viaCert = await new WireClient(api.url, {
      ca,
      cert: cert?.certPem ?? '',
      key: cert?.keyPem ?? '',
    }).get('/healthz');
    expect(viaCert.status).toBe(200);
    expect(viaCert.text).toBe('ok');
  });

  it('names users by certificate CN and groups by O; service-account tokens authenticate', async () => {
    const ca = api.caPem ?? '';
    const node = await api.issueClientCertificate({
      user: 'system:node:edge-1',
      groups: ['system:nodes'],
    });
    const asNode = new WireClient(api.url, { ca, cert: node.certPem, key: node.keyPem });
    await asNode.get('/api/v1/nodes', { 'User-Agent': 'node-cert-test' });
    const record = await api.requestLog.waitFor((r) => r.userAgent === 'node-cert-test');
    expect(record.user).toBe('system:node:edge-1');

    const admin = new WireClient(api.url, { ca, token: api.adminToken });
    const tr = await admin.post('/api/v1/namespaces/default/serviceaccounts/default/token', {
      spec: {},
    });
    const token = tr.json<{ status: { token: string } }>().status.token;
    await new WireClient(api.url, { ca, token }).get('/api/v1/namespaces/default/pods', {
      'User-Agent': 'sa-test',
    });
    const saRecord = await api.requestLog.waitFor((r) => r.userAgent === 'sa-test');
    expect(saRecord).toMatchObject({ user: 'system:serviceaccount:default:default', status: 200 });
  });

  it('publishes the CA in kube-root-ca.crt and serves discovery kubectl can map', async () => {
    const ca = api.caPem ?? '';
    const admin = new WireClient(api.url, { ca, token: api.adminToken });
    const cm = await admin.get('/api/v1/namespaces/kube-system/configmaps/kube-root-ca.crt');
    expect(cm.json<{ data: Record<string, string> }>().data['ca.crt']).toBe(ca);
    const core = (await admin.get('/api/v1')).json<{
      resources: Array<{ name: string; kind: string; verbs: string[]; shortNames?: string[] }>;
    }>();
    expect(core.resources.find((r) => r.name === 'pods')).toMatchObject({
      kind: 'Pod',
      shortNames: ['po'],
    });
    expect(core.resources.find((r) => r.name === 'pods/eviction')).toMatchObject({
      kind: 'Eviction',
      verbs: ['create'],
    });
    const groups = (await admin.get('/apis')).json<{ groups: Array<{ name: string }> }>();
    expect(groups.groups.map((g) => g.name)).toEqual([
      'discovery.k8s.io',
      'coordination.k8s.io',
      'node.k8s.io',
      'storage.k8s.io',
      'events.k8s.io',
      'example.edgebox.io',
    ]);
  });
});
