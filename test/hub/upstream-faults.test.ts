import { request as httpRequest } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { FakeApiServer } from '../apiserver/server.ts';
import type { RunningHub } from '../../edge-hub/hub.ts';
import { KUBELET_UA, call, startApiAndHub, until } from './hub-harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const kubelet = { 'User-Agent': KUBELET_UA };
const LIST = '/api/v1/namespaces/default/configmaps';

async function setup() {
  const { api, hub } = await startApiAndHub(cleanups);
  for (const name of ['one', 'two']) {
    api.store.create('configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: 'default' },
      data: { k: name },
    });
  }
  return { api, hub };
}

async function cachedNames(api: FakeApiServer, hub: RunningHub): Promise<string[]> {
  await hub.remote.drain();
  await api.stop();
  await until(() => hub.health.overall() === 'down', 'upstream down');
  const r = await call(`${hub.url}${LIST}`, { headers: kubelet });
  expect(r.headers['x-edgebox-source']).toBe('cache');
  return r
    .json<{ items: Array<{ metadata: { name: string } }> }>()
    .items.map((i) => i.metadata.name)
    .filter((n) => n !== 'kube-root-ca.crt')
    .sort();
}

describe('EdgeHub with a faulty upstream', () => {
  it('passes invalid JSON to the client and keeps the previous cached list', async () => {
    const { api, hub } = await setup();
    expect((await call(`${hub.url}${LIST}`, { headers: kubelet })).status).toBe(200);
    await hub.remote.drain();
    api.store.delete('configmaps', 'one', 'default');
    api.faults.invalidJson(1, (r) => r.path === LIST);
    const broken = await call(`${hub.url}${LIST}`, { headers: kubelet });
    expect(broken.headers['x-edgebox-source']).toBe('upstream');
    expect(() => broken.json()).toThrow();
    expect(await cachedNames(api, hub)).toEqual(['one', 'two']);
  });

  it('breaks the client response of a list cut mid-body and keeps the previous cached list', async () => {
    const { api, hub } = await setup();
    expect((await call(`${hub.url}${LIST}`, { headers: kubelet })).status).toBe(200);
    await hub.remote.drain();
    api.store.delete('configmaps', 'one', 'default');
    api.faults.truncateBody(1, (r) => r.path === LIST);
    await expect(call(`${hub.url}${LIST}`, { headers: kubelet })).rejects.toThrow();
    expect(await cachedNames(api, hub)).toEqual(['one', 'two']);
  });

  it('a complete list after a broken one replaces the set (objects gone upstream disappear)', async () => {
    const { api, hub } = await setup();
    await call(`${hub.url}${LIST}`, { headers: kubelet });
    api.store.delete('configmaps', 'one', 'default');
    api.faults.truncateBody(1, (r) => r.path === LIST);
    await expect(call(`${hub.url}${LIST}`, { headers: kubelet })).rejects.toThrow();
    expect((await call(`${hub.url}${LIST}`, { headers: kubelet })).status).toBe(200);
    expect(await cachedNames(api, hub)).toEqual(['two']);
  });

  it('relays apiserver errors as they are and does not count them as an outage', async () => {
    const { api, hub } = await setup();
    await until(() => hub.health.overall() === 'up', 'upstream up');
    api.faults.failWith(500, 3, (r) => r.path === LIST);
    for (let i = 0; i < 3; i++) {
      const r = await call(`${hub.url}${LIST}`, { headers: kubelet });
      expect(r.status).toBe(500);
      expect(r.headers['x-edgebox-source']).toBe('upstream');
    }
    expect(hub.health.overall()).toBe('up');
  });

  it('refuses a body over 3 MiB with 413 before it reaches upstream', async () => {
    const { api, hub } = await setup();
    const tooBig = 3 * 1024 * 1024 + 1;
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${hub.url}${LIST}`, {
        method: 'POST',
        headers: {
          ...kubelet,
          'Content-Type': 'application/json',
          'Content-Length': tooBig,
          Expect: '100-continue',
        },
        agent: false,
      });
      req.on('continue', () => req.end(Buffer.alloc(tooBig, 0x20)));
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(status).toBe(413);
    expect(api.requests.filter((r) => r.method === 'POST')).toEqual([]);
  });
});
