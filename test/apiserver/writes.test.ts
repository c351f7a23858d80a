import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from './server.ts';
import { WireClient } from './wire-client.ts';

type Obj = {
  kind?: string;
  apiVersion?: string;
  metadata: Record<string, unknown> & { name?: string; resourceVersion?: string };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
};

const pod = (name: string, extra: Partial<Obj> = {}): Obj => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels: { app: 'demo' } },
  spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] },
  ...extra,
});

describe('writes over the wire', () => {
  const api = new FakeApiServer();
  let wire: WireClient;
  beforeAll(async () => {
    await api.start();
    wire = new WireClient(api.url);
  });
  afterAll(() => api.close());

  it('creates with 201, sets uid, creationTimestamp, resourceVersion, defaults and Pending status', async () => {
    const res = await wire.post('/api/v1/namespaces/default/pods', pod('create-1'));
    expect(res.status).toBe(201);
    const obj = res.json<Obj>();
    expect(obj.kind).toBe('Pod');
    expect(obj.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(obj.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(obj.metadata.resourceVersion).toMatch(/^\d+$/);
    expect(obj.metadata.namespace).toBe('default');
    expect(obj.status).toEqual({ phase: 'Pending', qosClass: 'BestEffort' });
    // DefaultTolerationSeconds admission
    expect(obj.spec?.tolerations).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ key: 'node.kubernetes.io/unreachable', tolerationSeconds: 300 }),
      ]),
    );
  });

  it('every write increments one global resourceVersion', async () => {
    const a = (
      await wire.post('/api/v1/namespaces/default/configmaps', { metadata: { name: 'rv-a' } })
    ).json<Obj>();
    const b = (
      await wire.post('/apis/coordination.k8s.io/v1/namespaces/default/leases', {
        metadata: { name: 'rv-b' },
      })
    ).json<Obj>();
    expect(Number(b.metadata.resourceVersion)).toBe(Number(a.metadata.resourceVersion) + 1);
  });

  it('generateName gives a random 5-character suffix', async () => {
    const res = await wire.post('/api/v1/namespaces/default/pods', {
      ...pod(''),
      metadata: { generateName: 'gen-' },
    });
    expect(res.status).toBe(201);
    expect(res.json<Obj>().metadata.name).toMatch(/^gen-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
  });

  it('rejects a missing name, a bad name, a namespace mismatch and an unknown namespace', async () => {
    const noName = await wire.post('/api/v1/namespaces/default/configmaps', { metadata: {} });
    expect(noName.status).toBe(422);
    expect(noName.json().message).toBe(
      'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required',
    );
    const badName = await wire.post('/api/v1/namespaces/default/configmaps', {
      metadata: { name: 'Bad_Name' },
    });
    expect(badName.status).toBe(422);
    expect(badName.json().reason).toBe('Invalid');
    expect(badName.json().message).toContain('a lowercase RFC 1123 subdomain');
    const mismatch = await wire.post('/api/v1/namespaces/default/configmaps', {
      metadata: { name: 'x', namespace: 'kube-system' },
    });
    expect(mismatch.status).toBe(400);
    expect(mismatch.json().message).toBe(
      'the namespace of the provided object does not match the namespace sent on the request',
    );
    const noNs = await wire.post('/api/v1/namespaces/nope/configmaps', { metadata: { name: 'x' } });
    expect(noNs.status).toBe(404);
    expect(noNs.json().message).toBe('namespaces "nope" not found');
  });

  it('answers 409 AlreadyExists for a duplicate create', async () => {
    await wire.post('/api/v1/namespaces/default/configmaps', { metadata: { name: 'dup' } });
    const res = await wire.post('/api/v1/namespaces/default/configmaps', {
      metadata: { name: 'dup' },
    });
    expect(res.status).toBe(409);
    expect(res.json()).toMatchObject({
      reason: 'AlreadyExists',
      message: 'configmaps "dup" already exists',
    });
  });

  it('answers 400 on invalid JSON and 413 on a body over 3 MiB', async () => {
    const bad = await wire.request('POST', '/api/v1/namespaces/default/configmaps', {
      body: '{"metadata": {',
      contentType: 'application/json',
    });
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ kind: 'Status', reason: 'BadRequest' });
    const big = await wire.post('/api/v1/namespaces/default/configmaps', {
      metadata: { name: 'big' },
      data: { blob: 'x'.repeat(3 * 1024 * 1024 + 10) },
    });
    expect(big.status).toBe(413);
    expect(big.json()).toMatchObject({ reason: 'RequestEntityTooLarge', code: 413 });
  });

  it('PUT with a stale resourceVersion is 409 Conflict; with the current one it succeeds', async () => {
    const created = (
      await wire.post('/api/v1/namespaces/default/configmaps', {
        metadata: { name: 'occ' },
        data: { a: '1' },
      })
    ).json<Obj>();
    const first = await wire.put('/api/v1/namespaces/default/configmaps/occ', {
      ...created,
      data: { a: '2' },
    });
    expect(first.status).toBe(200);
    const stale = await wire.put('/api/v1/namespaces/default/configmaps/occ', {
      ...created,
      data: { a: '3' },
    });
    expect(stale.status).toBe(409);
    expect(stale.json()).toMatchObject({
      reason: 'Conflict',
      message:
        'Operation cannot be fulfilled on configmaps "occ": the object has been modified; please apply your changes to the latest version and try again',
    });
  });

  it('a no-op update keeps the resourceVersion', async () => {
    const created = (
      await wire.post('/api/v1/namespaces/default/configmaps', {
        metadata: { name: 'noop' },
        data: { a: '1' },
      })
    ).json<Obj>();
    const again = (
      await wire.put('/api/v1/namespaces/default/configmaps/noop', created)
    ).json<Obj>();
    expect(again.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
  });

  it('PUT on the main resource ignores .status; PUT and PATCH on /status change only .status', async () => {
    const created = (
      await wire.post('/api/v1/nodes', {
        metadata: { name: 'node-s' },
        status: { phase: 'Running' },
      })
    ).json<Obj>();
    const put = (
      await wire.put('/api/v1/nodes/node-s', {
        ...created,
        metadata: { ...created.metadata, labels: { a: 'b' } },
        status: { phase: 'Terminated' },
      })
    ).json<Obj>();
    expect(put.metadata.labels).toEqual({ a: 'b' });
    expect(put.status).toEqual({ phase: 'Running' });
    const viaStatus = (
      await wire.put('/api/v1/nodes/node-s/status', {
        ...put,
        metadata: { ...put.metadata, labels: { c: 'd' } },
        status: { phase: 'Terminated' },
      })
    ).json<Obj>();
    expect(viaStatus.status).toEqual({ phase: 'Terminated' });
    expect(viaStatus.metadata.labels).toEqual({ a: 'b' });
    const patched = await wire.patch(
      '/api/v1/nodes/node-s/status',
      'application/strategic-merge-patch+json',
      {
        metadata: { labels: { e: 'f' } },
        status: { conditions: [{ type: 'Ready', status: 'True' }] },
      },
    );
    expect(patched.status).toBe(200);
    expect(patched.json<Obj>().status?.conditions).toEqual([{ type: 'Ready', status: 'True' }]);
    expect(patched.json<Obj>().metadata.labels).toEqual({ a: 'b' });
  });

  it('patches with merge, JSON and strategic merge patch; custom resources refuse strategic (415)', async () => {
    await wire.post('/api/v1/namespaces/default/pods', pod('patch-1'));
    const merge = await wire.patch(
      '/api/v1/namespaces/default/pods/patch-1',
      'application/merge-patch+json',
      {
        metadata: { labels: { app: null, tier: 'web' } },
      },
    );
    expect(merge.json<Obj>().metadata.labels).toEqual({ tier: 'web' });
    const json = await wire.patch(
      '/api/v1/namespaces/default/pods/patch-1',
      'application/json-patch+json',
      [{ op: 'add', path: '/metadata/annotations', value: { a: '1' } }],
    );
    expect(json.json<Obj>().metadata.annotations).toEqual({ a: '1' });
    const smp = await wire.patch(
      '/api/v1/namespaces/default/pods/patch-1',
      'application/strategic-merge-patch+json',
      {
        spec: { containers: [{ name: 'sidecar', image: 'envoy:1' }] },
      },
    );
    expect(
      (smp.json<Obj>().spec?.containers as Array<{ name: string }>).map((c) => c.name),
    ).toEqual(['c', 'sidecar']);
    const badTest = await wire.patch(
      '/api/v1/namespaces/default/pods/patch-1',
      'application/json-patch+json',
      [{ op: 'test', path: '/metadata/name', value: 'other' }],
    );
    expect(badTest.status).toBe(422);
    await wire.post('/apis/example.edgebox.io/v1/namespaces/default/widgets', {
      metadata: { name: 'w' },
      spec: { size: 1 },
    });
    const crSmp = await wire.patch(
      '/apis/example.edgebox.io/v1/namespaces/default/widgets/w',
      'application/strategic-merge-patch+json',
      { spec: { size: 2 } },
    );
    expect(crSmp.status).toBe(415);
    const apply = await wire.patch(
      '/api/v1/namespaces/default/pods/patch-1',
      'application/apply-patch+yaml',
      'metadata: {}',
    );
    expect(apply.status).toBe(415);
  });

  it('a patch carrying a stale resourceVersion is 409', async () => {
    const created = (
      await wire.post('/api/v1/namespaces/default/configmaps', { metadata: { name: 'patch-rv' } })
    ).json<Obj>();
    await wire.patch(
      '/api/v1/namespaces/default/configmaps/patch-rv',
      'application/merge-patch+json',
      { data: { a: '1' } },
    );
    const stale = await wire.patch(
      '/api/v1/namespaces/default/configmaps/patch-rv',
      'application/merge-patch+json',
      {
        metadata: { resourceVersion: created.metadata.resourceVersion },
        data: { a: '2' },
      },
    );
    expect(stale.status).toBe(409);
  });

  it('custom resources track generation on spec changes only', async () => {
    const w = (
      await wire.post('/apis/example.edgebox.io/v1/namespaces/default/widgets', {
        metadata: { name: 'gen' },
        spec: { size: 1 },
        status: { ignored: true },
      })
    ).json<Obj>();
    expect(w.metadata.generation).toBe(1);
    expect(w.status).toBeUndefined();
    const spec = (
      await wire.patch(
        '/apis/example.edgebox.io/v1/namespaces/default/widgets/gen',
        'application/merge-patch+json',
        { spec: { size: 2 } },
      )
    ).json<Obj>();
    expect(spec.metadata.generation).toBe(2);
    const labels = (
      await wire.patch(
        '/apis/example.edgebox.io/v1/namespaces/default/widgets/gen',
        'application/merge-patch+json',
        { metadata: { labels: { a: 'b' } } },
      )
    ).json<Obj>();
    expect(labels.metadata.generation).toBe(2);
    const status = (
      await wire.patch(
        '/apis/example.edgebox.io/v1/namespaces/default/widgets/gen/status',
        'application/merge-patch+json',
        { status: { ready: true } },
      )
    ).json<Obj>();
    expect(status.status).toEqual({ ready: true });
    expect(status.metadata.generation).toBe(2);
  });

  it('delete answers the object (pods) or a Status (configmaps); preconditions mismatch is 409', async () => {
    await wire.post('/api/v1/namespaces/default/pods', pod('del-1'));
    const podDel = await wire.delete('/api/v1/namespaces/default/pods/del-1');
    expect(podDel.status).toBe(200);
    expect(podDel.json()).toMatchObject({ kind: 'Pod', metadata: { name: 'del-1' } });
    const cm = (
      await wire.post('/api/v1/namespaces/default/configmaps', { metadata: { name: 'del-2' } })
    ).json<Obj>();
    const pre = await wire.delete('/api/v1/namespaces/default/configmaps/del-2', {
      kind: 'DeleteOptions',
      apiVersion: 'v1',
      preconditions: { uid: 'not-the-uid' },
    });
    expect(pre.status).toBe(409);
    expect(pre.json().message).toContain('Precondition failed: UID in precondition: not-the-uid');
    const cmDel = await wire.delete('/api/v1/namespaces/default/configmaps/del-2', {
      preconditions: { uid: cm.metadata.uid, resourceVersion: cm.metadata.resourceVersion },
    });
    expect(cmDel.json()).toMatchObject({
      kind: 'Status',
      status: 'Success',
      details: { name: 'del-2', kind: 'configmaps', uid: cm.metadata.uid },
    });
    expect((await wire.get('/api/v1/namespaces/default/configmaps/del-2')).status).toBe(404);
  });

  it('an object with finalizers gets deletionTimestamp and goes when the last finalizer is removed', async () => {
    await wire.post('/api/v1/namespaces/default/configmaps', {
      metadata: { name: 'fin', finalizers: ['example.com/keep'] },
    });
    const del = (await wire.delete('/api/v1/namespaces/default/configmaps/fin')).json<Obj>();
    expect(del.metadata.deletionTimestamp).toBeDefined();
    const still = await wire.get('/api/v1/namespaces/default/configmaps/fin');
    expect(still.status).toBe(200);
    const addMore = await wire.patch(
      '/api/v1/namespaces/default/configmaps/fin',
      'application/merge-patch+json',
      {
        metadata: { finalizers: ['example.com/keep', 'example.com/more'] },
      },
    );
    expect(addMore.status).toBe(422);
    const removed = await wire.patch(
      '/api/v1/namespaces/default/configmaps/fin',
      'application/merge-patch+json',
      {
        metadata: { finalizers: null },
      },
    );
    expect(removed.status).toBe(200);
    expect((await wire.get('/api/v1/namespaces/default/configmaps/fin')).status).toBe(404);
  });

  it('a pod bound to a node is deleted gracefully: deletionTimestamp first, gone on gracePeriodSeconds=0', async () => {
    await wire.post(
      '/api/v1/namespaces/default/pods',
      pod('grace', { spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i:1' }] } }),
    );
    const first = (await wire.delete('/api/v1/namespaces/default/pods/grace')).json<Obj>();
    expect(first.metadata.deletionGracePeriodSeconds).toBe(30);
    expect((await wire.get('/api/v1/namespaces/default/pods/grace')).status).toBe(200);
    const now = await wire.delete('/api/v1/namespaces/default/pods/grace?gracePeriodSeconds=0');
    expect(now.status).toBe(200);
    expect((await wire.get('/api/v1/namespaces/default/pods/grace')).status).toBe(404);
  });

  it('pods/eviction deletes the pod (201 Status Success); pods/binding sets nodeName', async () => {
    await wire.post('/api/v1/namespaces/default/pods', pod('evict-me'));
    const ev = await wire.post('/api/v1/namespaces/default/pods/evict-me/eviction', {
      apiVersion: 'policy/v1',
      kind: 'Eviction',
      metadata: { name: 'evict-me', namespace: 'default' },
    });
    expect(ev.status).toBe(201);
    expect(ev.json()).toMatchObject({ kind: 'Status', status: 'Success' });
    expect((await wire.get('/api/v1/namespaces/default/pods/evict-me')).status).toBe(404);

    await wire.post('/api/v1/namespaces/default/pods', pod('bind-me'));
    const bind = await wire.post('/api/v1/namespaces/default/pods/bind-me/binding', {
      apiVersion: 'v1',
      kind: 'Binding',
      metadata: { name: 'bind-me' },
      target: { kind: 'Node', name: 'node-a' },
    });
    expect(bind.status).toBe(201);
    const bound = (await wire.get('/api/v1/namespaces/default/pods/bind-me')).json<Obj>();
    expect(bound.spec?.nodeName).toBe('node-a');
    const again = await wire.post('/api/v1/namespaces/default/pods/bind-me/binding', {
      metadata: { name: 'bind-me' },
      target: { name: 'node-b' },
    });
    expect(again.status).toBe(409);
  });

  it('serviceaccounts/token returns a token with expirationTimestamp', async () => {
    const res = await wire.post('/api/v1/namespaces/default/serviceaccounts/default/token', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: ['api'], expirationSeconds: 3600 },
    });
    expect(res.status).toBe(201);
    const tr = res.json<Obj>();
    expect(tr.kind).toBe('TokenRequest');
    expect(tr.status?.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    expect(Date.parse(String(tr.status?.expirationTimestamp))).toBeGreaterThan(
      Date.now() + 3500_000,
    );
    const missing = await wire.post('/api/v1/namespaces/default/serviceaccounts/nobody/token', {
      spec: {},
    });
    expect(missing.status).toBe(404);
  });

  it('deletecollection deletes what the selector picks', async () => {
    await api.store.create('configmaps', {
      metadata: { name: 'dc-1', namespace: 'default', labels: { batch: 'x' } },
    });
    await api.store.create('configmaps', {
      metadata: { name: 'dc-2', namespace: 'default', labels: { batch: 'x' } },
    });
    await api.store.create('configmaps', {
      metadata: { name: 'dc-3', namespace: 'default', labels: { batch: 'y' } },
    });
    const res = await wire.delete('/api/v1/namespaces/default/configmaps?labelSelector=batch%3Dx');
    expect(res.status).toBe(200);
    expect(
      res
        .json<{ items: Obj[] }>()
        .items.map((i) => i.metadata.name)
        .sort(),
    ).toEqual(['dc-1', 'dc-2']);
    expect(
      api.store.list('configmaps', { labelSelector: 'batch' }).map((c) => c.metadata.name),
    ).toEqual(['dc-3']);
  });

  it('dryRun=All validates without persisting', async () => {
    const res = await wire.post('/api/v1/namespaces/default/configmaps?dryRun=All', {
      metadata: { name: 'dry' },
    });
    expect(res.status).toBe(201);
    expect((await wire.get('/api/v1/namespaces/default/configmaps/dry')).status).toBe(404);
  });

  it('deleting a namespace empties it, then removes it; default may not be deleted', async () => {
    await wire.post('/api/v1/namespaces', { metadata: { name: 'doomed' } });
    const sa = await wire.get('/api/v1/namespaces/doomed/serviceaccounts/default');
    expect(sa.status).toBe(200);
    await wire.post('/api/v1/namespaces/doomed/configmaps', { metadata: { name: 'c' } });
    const del = (await wire.delete('/api/v1/namespaces/doomed')).json<Obj>();
    expect(del.status).toMatchObject({ phase: 'Terminating' });
    await expect.poll(() => api.store.get('namespaces', 'doomed')).toBeUndefined();
    expect(api.store.list('configmaps', { namespace: 'doomed' })).toEqual([]);
    const protectedNs = await wire.delete('/api/v1/namespaces/default');
    expect(protectedNs.status).toBe(403);
  });

  it('unknown resources and methods get the apiserver Status answers', async () => {
    const unknown = await wire.get('/apis/example.edgebox.io/v1/namespaces/default/gadgets');
    expect(unknown.status).toBe(404);
    expect(unknown.json().message).toBe('the server could not find the requested resource');
    const put = await wire.put('/api/v1/namespaces/default/configmaps', {
      metadata: { name: 'x' },
    });
    expect(put.status).toBe(405);
  });
});
