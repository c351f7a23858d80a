import { leaseProtobufBody } from '../support/kubelet-protobuf.ts';
import { afterEach, describe, expect, it } from 'vitest';
import type { FakeApiServer } from '../apiserver/server.ts';
import type { RunningHub } from '../../edge-hub/hub.ts';
import {
  KUBELET_UA,
  NODE,
  NODE_LEASES,
  call,
  nodeLease,
  openWatch,
  renewedLease,
  startApiAndHub,
  until,
  type LeaseObject,
  type Reply,
} from './hub-harness.ts';

/**
 * Everything a real kubelet (v1.25) asks kube-apiserver (shared/FACTS.md),
 * sent with kubelet's User-Agent and Accept header, first online and then
 * with the control plane gone.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const KUBELET_HEADERS = {
  'User-Agent': KUBELET_UA,
  Accept: 'application/vnd.kubernetes.protobuf,application/json',
};
const SEL_NODE = `fieldSelector=${encodeURIComponent(`spec.nodeName=${NODE}`)}`;
const SEL_NAME = (n: string) => `fieldSelector=${encodeURIComponent(`metadata.name=${n}`)}`;

/** kubelet's informers: list with resourceVersion=0, then watch from the list's resourceVersion. */
const SERVICES = '/api/v1/services';
const WATCHED = [
  `/api/v1/pods?${SEL_NODE}`,
  `/api/v1/nodes?${SEL_NAME(NODE)}`,
  SERVICES,
  `/apis/node.k8s.io/v1/runtimeclasses`,
  `/apis/storage.k8s.io/v1/csidrivers`,
  `/api/v1/namespaces/default/configmaps?${SEL_NAME('app-config')}`,
  `/api/v1/namespaces/default/configmaps?${SEL_NAME('kube-root-ca.crt')}`,
  `/api/v1/namespaces/default/secrets?${SEL_NAME('app-secret')}`,
];

function withQuery(path: string, query: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}${query}`;
}

function kubelet(
  hub: RunningHub,
  path: string,
  method = 'GET',
  body?: unknown,
  contentType?: string,
) {
  return call(`${hub.url}${path}`, {
    method,
    headers: {
      ...KUBELET_HEADERS,
      ...(body === undefined ? {} : { 'Content-Type': contentType ?? 'application/json' }),
    },
    ...(body === undefined ? {} : { body: Buffer.isBuffer(body) ? body : JSON.stringify(body) }),
  });
}

/** kubelet renews its Lease in protobuf, its clientset's encoding. */
const PROTOBUF = 'application/vnd.kubernetes.protobuf';
function kubeletLease(lease: LeaseObject): Buffer {
  return leaseProtobufBody(renewedLease(lease) as Parameters<typeof leaseProtobufBody>[0]);
}

function names(r: Reply): string[] {
  return r
    .json<{ items: Array<{ metadata: { name: string } }> }>()
    .items.map((i) => i.metadata.name);
}

function expectOk(r: Reply, what: string, source: 'upstream' | 'cache'): void {
  expect(r.status, `${what}: ${r.body.slice(0, 300)}`).toBeLessThan(300);
  expect(r.headers['x-edgebox-source'], what).toBe(source);
}

async function seed(api: FakeApiServer): Promise<void> {
  api.store.create('configmaps', {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'app-config', namespace: 'default' },
    data: { a: '1' },
  });
  api.store.create('secrets', {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'app-secret', namespace: 'default' },
    data: { p: Buffer.from('s3cret').toString('base64') },
  });
  api.store.create('pods', {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'app', namespace: 'default' },
    spec: {
      nodeName: NODE,
      serviceAccountName: 'default',
      containers: [{ name: 'app', image: 'busybox' }],
      volumes: [
        { name: 'c', configMap: { name: 'app-config' } },
        { name: 's', secret: { secretName: 'app-secret' } },
      ],
    },
  });
}

describe("kubelet's requests through EdgeHub", () => {
  it('all work online, and offline as the contract says', async () => {
    const { api, hub } = await startApiAndHub(cleanups);
    await seed(api);

    // --- start-up: register the node, its CSINode and its Lease ---
    const missing = await kubelet(hub, `/api/v1/nodes/${NODE}`);
    expect(missing.status).toBe(404);
    expectOk(
      await kubelet(hub, '/api/v1/nodes', 'POST', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE } },
      }),
      'POST nodes',
      'upstream',
    );
    expect((await kubelet(hub, `/apis/storage.k8s.io/v1/csinodes/${NODE}`)).status).toBe(404);
    expectOk(
      await kubelet(hub, '/apis/storage.k8s.io/v1/csinodes', 'POST', {
        apiVersion: 'storage.k8s.io/v1',
        kind: 'CSINode',
        metadata: { name: NODE },
        spec: { drivers: [] },
      }),
      'POST csinodes',
      'upstream',
    );
    expectOk(
      await kubelet(hub, `/apis/storage.k8s.io/v1/csinodes/${NODE}`),
      'GET csinode',
      'upstream',
    );
    const created = await kubelet(hub, NODE_LEASES, 'POST', nodeLease());
    expectOk(created, 'POST lease', 'upstream');
    let lease = created.json<LeaseObject>();

    // --- informers: list, then watch from the list's resourceVersion ---
    const listRv = new Map<string, string>();
    for (const path of WATCHED) {
      const r = await kubelet(hub, withQuery(path, 'limit=500&resourceVersion=0'));
      if (path === SERVICES) {
        // Services come from the node's one shared watch: what kubelet sees is what upstream holds.
        expect(r.status).toBe(200);
        expect(names(r)).toEqual(api.store.list('services').map((o) => o.metadata.name));
      } else {
        expectOk(r, `LIST ${path}`, 'upstream');
      }
      listRv.set(
        path,
        r.json<{ metadata: { resourceVersion: string } }>().metadata.resourceVersion,
      );
    }
    const podList = await kubelet(hub, `/api/v1/pods?${SEL_NODE}`);
    expect(podList.json<{ items: unknown[] }>().items).toHaveLength(1);
    for (const path of WATCHED) {
      const w = openWatch(
        `${hub.url}${withQuery(path, `watch=true&allowWatchBookmarks=true&resourceVersion=${listRv.get(path) ?? ''}&timeoutSeconds=400`)}`,
        KUBELET_HEADERS,
      );
      await until(() => w.response() !== undefined, `WATCH ${path} to open`);
      expect(w.response()?.statusCode, path).toBe(200);
      if (path === SERVICES) {
        // A change upstream reaches kubelet's watch of the shared Services.
        api.store.create('services', {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'web', namespace: 'default' },
          spec: { ports: [{ port: 80 }] },
        });
        await until(() => w.events.length > 0, 'the new Service on the watch');
        expect(w.events.map((e) => [e.type, e.object.metadata?.name])).toEqual([['ADDED', 'web']]);
      } else {
        expect(w.response()?.headers['x-edgebox-source']).toBe('upstream');
      }
      w.close();
    }

    // --- the steady state: heartbeats, pod status, tokens, events ---
    expectOk(
      await kubelet(hub, `/api/v1/nodes/${NODE}?resourceVersion=0&timeout=10s`),
      'GET node',
      'upstream',
    );
    const renewed = await kubelet(
      hub,
      `${NODE_LEASES}/${NODE}?timeout=10s`,
      'PUT',
      kubeletLease(lease),
      PROTOBUF,
    );
    expectOk(renewed, 'PUT lease', 'upstream');
    lease = renewed.json();
    const readyPatch = {
      status: {
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'KubeletReady',
            lastHeartbeatTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
          },
        ],
      },
    };
    expectOk(
      await kubelet(
        hub,
        `/api/v1/nodes/${NODE}/status`,
        'PATCH',
        readyPatch,
        'application/strategic-merge-patch+json',
      ),
      'PATCH node status',
      'upstream',
    );
    expectOk(await kubelet(hub, '/api/v1/namespaces/default/pods/app'), 'GET pod', 'upstream');
    expectOk(
      await kubelet(
        hub,
        '/api/v1/namespaces/default/pods/app/status',
        'PATCH',
        { status: { phase: 'Running' } },
        'application/strategic-merge-patch+json',
      ),
      'PATCH pod status',
      'upstream',
    );
    const tokenRequest = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: ['https://kubernetes.default.svc'], expirationSeconds: 3600 },
    };
    const token = await kubelet(
      hub,
      '/api/v1/namespaces/default/serviceaccounts/default/token',
      'POST',
      tokenRequest,
    );
    expectOk(token, 'POST token', 'upstream');
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'app.1', namespace: 'default' },
      involvedObject: { kind: 'Pod', namespace: 'default', name: 'app' },
      reason: 'Started',
      message: 'Started container app',
      type: 'Normal',
      count: 1,
    };
    expectOk(
      await kubelet(hub, '/api/v1/namespaces/default/events', 'POST', event),
      'POST event',
      'upstream',
    );
    expectOk(
      await kubelet(
        hub,
        '/api/v1/namespaces/default/events/app.1',
        'PATCH',
        { count: 2 },
        'application/strategic-merge-patch+json',
      ),
      'PATCH event',
      'upstream',
    );

    // --- the control plane goes away ---
    await hub.remote.drain();
    await api.stop();
    await until(() => hub.health.overall() === 'down', 'upstream down');

    for (const path of WATCHED) {
      const r = await kubelet(hub, withQuery(path, 'limit=500&resourceVersion=0'));
      expectOk(r, `offline LIST ${path}`, 'cache');
      const w = openWatch(
        `${hub.url}${withQuery(path, `watch=true&allowWatchBookmarks=true&resourceVersion=${listRv.get(path) ?? ''}&timeoutSeconds=400`)}`,
        KUBELET_HEADERS,
      );
      await until(() => w.response() !== undefined, `offline WATCH ${path} to open`);
      expect(w.response()?.statusCode, path).toBe(200);
      expect(w.response()?.headers['x-edgebox-source']).toBe('cache');
      w.close();
    }
    const offlinePods = await kubelet(hub, `/api/v1/pods?${SEL_NODE}&limit=500&resourceVersion=0`);
    expect(
      offlinePods
        .json<{ items: Array<{ metadata: { name: string } }> }>()
        .items.map((p) => p.metadata.name),
    ).toEqual(['app']);
    const secret = await kubelet(
      hub,
      `/api/v1/namespaces/default/secrets?${SEL_NAME('app-secret')}`,
    );
    expect(secret.json<{ items: Array<{ data: Record<string, string> }> }>().items[0]?.data.p).toBe(
      Buffer.from('s3cret').toString('base64'),
    );

    expectOk(
      await kubelet(hub, `/api/v1/nodes/${NODE}?resourceVersion=0&timeout=10s`),
      'offline GET node',
      'cache',
    );
    expectOk(
      await kubelet(hub, `/apis/storage.k8s.io/v1/csinodes/${NODE}`),
      'offline GET csinode',
      'cache',
    );
    expectOk(await kubelet(hub, '/api/v1/namespaces/default/pods/app'), 'offline GET pod', 'cache');
    // Heartbeats are acknowledged on the node so kubelet keeps its pods running.
    const offlineRenew = await kubelet(
      hub,
      `${NODE_LEASES}/${NODE}?timeout=10s`,
      'PUT',
      kubeletLease(lease),
      PROTOBUF,
    );
    expectOk(offlineRenew, 'offline PUT lease', 'cache');
    expect(
      offlineRenew.json<{ metadata: { resourceVersion?: string } }>().metadata.resourceVersion,
    ).toBeTruthy();
    expectOk(
      await kubelet(
        hub,
        `/api/v1/nodes/${NODE}/status`,
        'PATCH',
        readyPatch,
        'application/strategic-merge-patch+json',
      ),
      'offline PATCH node status',
      'cache',
    );
    const offlineToken = await kubelet(
      hub,
      '/api/v1/namespaces/default/serviceaccounts/default/token',
      'POST',
      tokenRequest,
    );
    expectOk(offlineToken, 'offline POST token', 'cache');
    expect(offlineToken.json<{ status: { token: string } }>().status.token).toBe(
      token.json<{ status: { token: string } }>().status.token,
    );
    // Every other write: a 503 Status that says the node is offline.
    for (const [what, r] of [
      [
        'PATCH pod status',
        await kubelet(
          hub,
          '/api/v1/namespaces/default/pods/app/status',
          'PATCH',
          { status: { phase: 'Running' } },
          'application/strategic-merge-patch+json',
        ),
      ],
      [
        'POST event',
        await kubelet(hub, '/api/v1/namespaces/default/events', 'POST', {
          ...event,
          metadata: { name: 'app.2', namespace: 'default' },
        }),
      ],
      [
        'PATCH event',
        await kubelet(
          hub,
          '/api/v1/namespaces/default/events/app.1',
          'PATCH',
          { count: 3 },
          'application/strategic-merge-patch+json',
        ),
      ],
    ] as const) {
      expect(r.status, what).toBe(503);
      expect(r.headers['x-edgebox-source'], what).toBe('cache');
      expect(r.json<{ kind: string; message: string }>(), what).toMatchObject({ kind: 'Status' });
      expect(r.json<{ message: string }>().message, what).toMatch(/offline/);
    }
    // Registering again at start-up: the node exists (kubelet then GETs it, from the cache).
    const register = await kubelet(hub, '/api/v1/nodes', 'POST', {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: NODE },
    });
    expect(register.status).toBe(409);
    expect(register.headers['x-edgebox-source']).toBe('cache');
    expect(register.json()).toMatchObject({ kind: 'Status', reason: 'AlreadyExists' });
  });
});
