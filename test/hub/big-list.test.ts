import { afterEach, describe, expect, it } from 'vitest';
import { STREAMED_LIST_BYTES } from '../../edge-hub/cache/list-items.ts';
import { KUBELET_UA, call, startApiAndHub, until } from './hub-harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const kubelet = { 'User-Agent': KUBELET_UA };
const PODS = '/api/v1/pods';
/** Enough 4 KiB pods that their LIST is parsed and staged as it streams, not held whole. */
const POD_COUNT = Math.ceil((STREAMED_LIST_BYTES * 1.2) / 4096);

interface PodList {
  metadata: { resourceVersion: string };
  items: Array<{ metadata: { name: string; resourceVersion: string } }>;
}

function podObject(i: number) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `pod-${String(i).padStart(5, '0')}`,
      namespace: 'default',
      annotations: { padding: 'x'.repeat(4096) },
    },
    spec: { nodeName: 'edge-1', containers: [{ name: 'c', image: 'busybox' }] },
  };
}

const summary = (list: PodList) => ({
  resourceVersion: list.metadata.resourceVersion,
  items: list.items.map((p) => [p.metadata.name, p.metadata.resourceVersion]),
});

describe('EdgeHub with a LIST too large to hold', () => {
  it('answers offline what it streamed online, and a list cut mid-stream changes nothing', async () => {
    const { api, hub } = await startApiAndHub(cleanups);
    for (let i = 0; i < POD_COUNT; i++) api.store.create('pods', podObject(i));
    // Creating them kept the double busy past a health probe or two.
    await until(() => hub.health.overall() === 'up', 'upstream up');

    const online = await call(`${hub.url}${PODS}`, { headers: kubelet });
    expect(online.status, online.body.slice(0, 300)).toBe(200);
    expect(online.body.length).toBeGreaterThan(STREAMED_LIST_BYTES);
    const first = online.json<PodList>();
    expect(first.items).toHaveLength(POD_COUNT);
    await hub.remote.drain();

    // Upstream changes, then cuts the next LIST halfway: the client sees a broken response.
    api.store.delete('pods', 'pod-00000', 'default');
    api.store.create('pods', podObject(POD_COUNT));
    api.faults.truncateBody(1, (r) => r.path === PODS);
    await expect(call(`${hub.url}${PODS}`, { headers: kubelet })).rejects.toThrow();
    await hub.remote.drain();

    await api.stop();
    await until(() => hub.health.overall() === 'down', 'upstream down');
    const offline = await call(`${hub.url}${PODS}`, { headers: kubelet });
    expect(offline.status).toBe(200);
    expect(offline.headers['x-edgebox-source']).toBe('cache');
    expect(summary(offline.json<PodList>())).toEqual(summary(first));
  }, 60_000);
});
