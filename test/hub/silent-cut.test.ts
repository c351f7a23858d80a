import { Agent } from 'node:http';
import { makeInformer, type V1ConfigMap } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeApiServer } from '../apiserver/server.ts';
import { tcpLink } from '../support/tcp-link.ts';
import {
  KUBELET_UA,
  call,
  hubCoreApi,
  hubKubeConfig,
  startTestHub,
  tempDir,
  until,
} from './hub-harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const LIST = '/api/v1/namespaces/default/configmaps';

function names(objs: ReadonlyArray<{ metadata?: { name?: string } }>): string[] {
  return objs.map((o) => o.metadata?.name ?? '').sort();
}

describe('EdgeHub when the link to the control plane dies silently', () => {
  it('answers kubelet from the cache, reads in flight included, and catches up when the link returns', async () => {
    const api = new FakeApiServer();
    await api.start();
    const link = await tcpLink(api.url);
    const d = tempDir('hub-cut-');
    const hub = await startTestHub({
      server: [link.url],
      dataDir: d.path,
      healthInterval: '200ms',
      healthTimeout: '500ms',
    });
    cleanups.push(
      d.remove,
      () => api.close(),
      () => link.close(),
      () => hub.close(),
    );
    const create = (name: string) =>
      api.store.create('configmaps', {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name, namespace: 'default' },
        data: { name },
      });
    for (const name of ['cm-0', 'cm-1', 'cm-2']) create(name);

    const informer = makeInformer<V1ConfigMap>(hubKubeConfig(hub.url, KUBELET_UA), LIST, () =>
      hubCoreApi(hub.url, KUBELET_UA).listNamespacedConfigMap({ namespace: 'default' }),
    );
    const errors: unknown[] = [];
    informer.on('error', (err) => errors.push(err));
    await informer.start();
    cleanups.push(() => informer.stop());
    await until(() => informer.list('default').length === 3, 'the informer to list 3 ConfigMaps');

    // kubelet's kept connection to the hub, with the hub's own kept connection upstream behind it.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const get = (path: string) =>
      call(`${hub.url}${path}`, { headers: { 'User-Agent': KUBELET_UA }, agent });
    const before = await get(`${LIST}/cm-0`);
    expect(before.headers['x-edgebox-source']).toBe('upstream');
    expect(hub.health.overall()).toBe('up');

    // No RST, no FIN: open connections hang and new ones time out.
    link.cut();
    create('cm-new');
    api.store.delete('configmaps', 'cm-1', 'default');

    // A read sent on the kept connections, and a list on a new one: both answered, from the cache.
    const [kept, list] = await Promise.all([
      get(`${LIST}/cm-0`),
      call(`${hub.url}${LIST}`, { headers: { 'User-Agent': KUBELET_UA } }),
    ]);
    expect(kept.status).toBe(200);
    expect(kept.headers['x-edgebox-source']).toBe('cache');
    expect(kept.json<V1ConfigMap>().data).toEqual({ name: 'cm-0' });
    expect(list.status).toBe(200);
    expect(list.headers['x-edgebox-source']).toBe('cache');
    expect(names(list.json<{ items: V1ConfigMap[] }>().items)).toEqual(['cm-0', 'cm-1', 'cm-2']);
    expect(hub.health.overall()).toBe('down');
    // The informer's watch, hanging on the dead link, was ended and resumed from the cache.
    await until(() => hub.local.openWatches() > 0, 'the informer to watch from the cache');

    link.restore();
    // Up again: the offline watch ends, the informer relists upstream and sees what it missed.
    await until(
      () => names(informer.list('default')).join() === 'cm-0,cm-2,cm-new',
      'the informer to catch up with upstream',
      20_000,
    );
    expect(hub.health.overall()).toBe('up');
    expect(errors).toEqual([]);
  }, 60_000);
});
