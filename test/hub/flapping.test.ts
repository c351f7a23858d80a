import { makeInformer, type V1ConfigMap } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeApiServer } from '../apiserver/server.ts';
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

/** Small deterministic PRNG, so a failing run can be replayed. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FLAP_FOR_MS = Number(process.env.EDGEBOX_FLAP_MS ?? 35_000);
const LIST = '/api/v1/namespaces/default/configmaps';

function names(objs: ReadonlyArray<{ metadata?: { name?: string } }>): string[] {
  return objs
    .map((o) => o.metadata?.name ?? '')
    .filter((n) => n.startsWith('cm-'))
    .sort();
}

describe('EdgeHub under a flapping upstream', () => {
  it('no read error reaches the client and no deleted object comes back', async () => {
    const seed = Number(process.env.EDGEBOX_FLAP_SEED ?? 20261121);
    const random = mulberry32(seed);
    const api = new FakeApiServer();
    await api.start();
    const d = tempDir('hub-flap-');
    const hub = await startTestHub({
      server: [api.url],
      dataDir: d.path,
      healthInterval: '250ms',
      healthTimeout: '500ms',
    });
    cleanups.push(
      d.remove,
      () => api.close(),
      () => hub.close(),
    );

    let serial = 0;
    const alive: string[] = [];
    const createOne = () => {
      const name = `cm-${String(serial++).padStart(4, '0')}`;
      api.store.create('configmaps', {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name, namespace: 'default', labels: { flap: 'yes' } },
        data: { n: name },
      });
      alive.push(name);
    };
    for (let i = 0; i < 10; i++) createOne();

    const kc = hubKubeConfig(hub.url, KUBELET_UA);
    const core = hubCoreApi(hub.url, KUBELET_UA);
    const informer = makeInformer<V1ConfigMap>(kc, LIST, () =>
      core.listNamespacedConfigMap({ namespace: 'default' }),
    );
    const errors: unknown[] = [];
    const resurrected: string[] = [];
    const deletedSeen = new Set<string>();
    informer.on('error', (err) => errors.push(err));
    informer.on('delete', (obj) => deletedSeen.add(obj.metadata?.name ?? ''));
    informer.on('add', (obj) => {
      const name = obj.metadata?.name ?? '';
      // Names are never reused: an add after the informer saw the delete is a resurrection.
      if (deletedSeen.has(name)) resurrected.push(name);
    });
    await informer.start();
    cleanups.push(() => informer.stop());

    // Churn: create and delete objects the whole time, the link up or down.
    const churn = setInterval(() => {
      createOne();
      if (alive.length > 12 || random() < 0.4) {
        const victim = alive.splice(Math.floor(random() * alive.length), 1)[0];
        if (victim !== undefined) {
          api.store.delete('configmaps', victim, 'default');
        }
      }
    }, 120);
    cleanups.push(() => clearInterval(churn));

    // Reads from a second kubelet client the whole time: every one must succeed.
    const readFailures: string[] = [];
    let reads = 0;
    let readingStopped = false;
    const reader = (async () => {
      while (!readingStopped) {
        try {
          const r = await call(`${hub.url}${LIST}`, { headers: { 'User-Agent': KUBELET_UA } });
          if (r.status !== 200) readFailures.push(`${r.status} ${r.body.slice(0, 200)}`);
          reads++;
        } catch (err) {
          readFailures.push(String(err));
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    // Watch what the informer goes through: served by the cache at times, never emptied.
    let offlineWatchesSeen = 0;
    let smallestInformerSet = Infinity;
    const sampler = setInterval(() => {
      offlineWatchesSeen = Math.max(offlineWatchesSeen, hub.local.openWatches());
      smallestInformerSet = Math.min(smallestInformerSet, names(informer.list('default')).length);
    }, 20);
    cleanups.push(() => clearInterval(sampler));

    // Flap: down for 1-3 s, up for 1-3 s, for FLAP_FOR_MS.
    const flapUntil = Date.now() + FLAP_FOR_MS;
    let outages = 0;
    while (Date.now() < flapUntil) {
      await new Promise((r) => setTimeout(r, 1000 + random() * 2000));
      await api.stop();
      outages++;
      await new Promise((r) => setTimeout(r, 1000 + random() * 2000));
      await api.start();
    }
    clearInterval(churn);
    clearInterval(sampler);
    readingStopped = true;
    await reader;

    // Converge online: the informer ends up with exactly upstream's set.
    const upstreamNames = () => names(api.store.list('configmaps', { namespace: 'default' }));
    await until(
      () => names(informer.list('default')).join() === upstreamNames().join(),
      'the informer to converge on upstream',
      40_000,
    );
    expect(outages).toBeGreaterThan(3);
    expect(offlineWatchesSeen).toBeGreaterThan(0);
    expect(deletedSeen.size).toBeGreaterThan(10);
    expect(smallestInformerSet).toBeGreaterThan(0);
    expect(reads).toBeGreaterThan(50);
    expect(errors, `seed ${seed}`).toEqual([]);
    expect(readFailures, `seed ${seed}`).toEqual([]);
    expect(resurrected, `seed ${seed}`).toEqual([]);

    // And the cache, read offline, holds that set too: nothing deleted came back.
    await hub.remote.drain();
    const expected = upstreamNames();
    await api.stop();
    await until(() => hub.health.overall() === 'down', 'upstream down');
    const offline = await call(`${hub.url}${LIST}`, { headers: { 'User-Agent': KUBELET_UA } });
    expect(offline.headers['x-edgebox-source']).toBe('cache');
    expect(names(offline.json<{ items: V1ConfigMap[] }>().items)).toEqual(expected);
  }, 120_000);
});
