import { ListWatch, Watch, type V1Node } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import type { FakeApiServer } from '../apiserver/server.ts';
import type { RunningHub } from '../../edge-hub/hub.ts';
import {
  KUBELET_UA,
  NODE,
  NODE_LEASES,
  call,
  hubCoreApi,
  hubKubeConfig,
  nodeLease,
  renewedLease,
  startApiAndHub,
  until,
  type LeaseObject,
} from './hub-harness.ts';

/**
 * What kubelet sees when the control plane comes back: the hub acknowledged
 * its heartbeats offline with resourceVersions upstream never issued, and
 * those must neither hide upstream's changes nor wedge kubelet's writes.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const KUBELET = { 'User-Agent': KUBELET_UA, 'Content-Type': 'application/json' };

function renew(hub: RunningHub, lease: LeaseObject) {
  return call(`${hub.url}${NODE_LEASES}/${NODE}?timeout=10s`, {
    method: 'PUT',
    headers: KUBELET,
    body: JSON.stringify(renewedLease(lease)),
  });
}

async function setup() {
  const { api, hub } = await startApiAndHub(cleanups);
  api.store.create('nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE } });
  const created = await call(`${hub.url}${NODE_LEASES}`, {
    method: 'POST',
    headers: KUBELET,
    body: JSON.stringify(nodeLease()),
  });
  expect(created.status).toBe(201);
  return { api, hub, lease: created.json<LeaseObject>() };
}

/** Offline: kubelet renews its Lease `times` times; the hub answers each locally. */
async function renewOffline(
  hub: RunningHub,
  lease: LeaseObject,
  times: number,
): Promise<LeaseObject> {
  let current = lease;
  for (let i = 0; i < times; i++) {
    const r = await renew(hub, current);
    expect(r.status, r.body).toBe(200);
    expect(r.headers['x-edgebox-source']).toBe('cache');
    current = r.json<LeaseObject>();
  }
  return current;
}

async function goOffline(api: FakeApiServer, hub: RunningHub): Promise<void> {
  await hub.remote.drain();
  await api.stop();
  await until(() => hub.health.overall() === 'down', 'upstream down');
}

describe('EdgeHub after an outage', () => {
  it("clients re-list instead of resuming from a resourceVersion the hub made up, so upstream's changes are not lost", async () => {
    const { api, hub, lease } = await setup();
    const kc = hubKubeConfig(hub.url, KUBELET_UA);
    const core = hubCoreApi(hub.url, KUBELET_UA);
    const fieldSelector = `metadata.name=${NODE}`;
    // kubelet's informer on its own Node.
    const informer = new ListWatch<V1Node>(
      '/api/v1/nodes',
      new Watch(kc),
      () => core.listNode({ fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    await informer.start();
    cleanups.push(() => informer.stop());
    const node = () => informer.get(NODE);
    expect(node()).toBeDefined();

    await goOffline(api, hub);
    await until(() => hub.local.openWatches() === 1, 'the informer to watch the cache');
    await renewOffline(hub, lease, 20);
    const acked = await call(`${hub.url}/api/v1/nodes/${NODE}/status`, {
      method: 'PATCH',
      headers: { ...KUBELET, 'Content-Type': 'application/strategic-merge-patch+json' },
      body: JSON.stringify({
        status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] },
      }),
    });
    expect(acked.headers['x-edgebox-source']).toBe('cache');
    const localRv = acked.json<V1Node>().metadata?.resourceVersion ?? '';
    await until(
      () => node()?.metadata?.resourceVersion === localRv,
      'the informer to see the acknowledged status',
    );

    // Meanwhile the control plane taints the node, and the cluster moves on past localRv.
    const tainted = api.store.patch('nodes', NODE, '', 'merge', {
      spec: { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoSchedule' }] },
    });
    for (let i = 0; i < 40; i++) {
      api.store.create('configmaps', {
        metadata: { name: `busy-${i}`, namespace: 'default' },
      });
    }
    const taintRv = Number(tainted.metadata.resourceVersion);
    // The scenario only means something when upstream issued the taint at or below localRv.
    expect(taintRv).toBeLessThanOrEqual(Number(localRv));
    expect(Number(api.store.resourceVersion)).toBeGreaterThan(Number(localRv));

    await api.start();
    await until(() => hub.health.overall() === 'up', 'upstream up');
    await until(
      () => (node()?.spec?.taints ?? []).length === 1,
      'the informer to see the taint upstream set during the outage',
    );
    expect(node()?.metadata?.resourceVersion).not.toBe(localRv);
  });

  it('a Lease renewal with a resourceVersion only the hub issued gets 409 upstream; kubelet recovers by GET', async () => {
    const { api, hub, lease } = await setup();
    await goOffline(api, hub);
    const local = await renewOffline(hub, lease, 3);

    await api.start();
    await until(() => hub.health.overall() === 'up', 'upstream up');
    // kubelet's next renewal carries the resourceVersion the hub answered with.
    const refused = await renew(hub, local);
    expect(refused.status).toBe(409);
    expect(refused.headers['x-edgebox-source']).toBe('upstream');
    expect(refused.json()).toMatchObject({ kind: 'Status', reason: 'Conflict' });
    // kubelet's lease controller then GETs the Lease and renews that copy.
    const fresh = await call(`${hub.url}${NODE_LEASES}/${NODE}`, { headers: KUBELET });
    expect(fresh.status).toBe(200);
    expect(fresh.headers['x-edgebox-source']).toBe('upstream');
    const renewed = await renew(hub, fresh.json<LeaseObject>());
    expect(renewed.status).toBe(200);
    expect(renewed.headers['x-edgebox-source']).toBe('upstream');

    // The cache now holds upstream's copy, not the one acknowledged offline.
    await hub.remote.drain();
    await goOffline(api, hub);
    const offline = await call(`${hub.url}${NODE_LEASES}/${NODE}`, { headers: KUBELET });
    expect(offline.json<LeaseObject>().metadata.resourceVersion).toBe(
      renewed.json<LeaseObject>().metadata.resourceVersion,
    );
    expect((await renew(hub, renewed.json<LeaseObject>())).status).toBe(200);
  });
});
