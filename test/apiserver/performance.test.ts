import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from './server.ts';
import { WireClient } from './wire-client.ts';

/**
 * Sizes EdgeHub meets on a big node: 10,000 pods of ~4.6 KB. Bounds are
 * generous (shared CI machines) but would catch re-encoding per request or
 * quadratic paging.
 */

const COUNT = 10_000;

function bigPod(i: number): Record<string, unknown> {
  const name = `pod-${String(i).padStart(5, '0')}`;
  return {
    metadata: {
      name,
      namespace: 'load',
      labels: { app: `app-${i % 10}`, 'pod-template-hash': 'abcdef1234' },
      annotations: { 'example.com/notes': 'n'.repeat(1500) },
    },
    spec: {
      nodeName: `node-${i % 100}`,
      containers: [
        {
          name: 'main',
          image: 'registry.example.com/team/app:1.2.3',
          args: ['--flag-one', '--flag-two', '--flag-three'],
          env: Array.from({ length: 20 }, (_, j) => ({
            name: `ENV_VAR_${j}`,
            value: `value-${j}-${'v'.repeat(40)}`,
          })),
          resources: {
            requests: { cpu: '100m', memory: '128Mi' },
            limits: { cpu: '1', memory: '512Mi' },
          },
        },
      ],
    },
  };
}

describe('performance', () => {
  const api = new FakeApiServer({ historyLimit: 20_000 });
  let wire: WireClient;
  beforeAll(async () => {
    await api.start();
    wire = new WireClient(api.url);
    api.store.create('namespaces', { metadata: { name: 'load' } });
    for (let i = 0; i < COUNT; i++) api.store.create('pods', bigPod(i));
  }, 60_000);
  afterAll(() => api.close());

  it('serves a list of 10,000 pods of ~4.6 KB quickly', async () => {
    const t0 = performance.now();
    const res = await wire.get('/api/v1/pods');
    const took = performance.now() - t0;
    const list = res.json<{ items: Array<{ metadata: { name: string } }> }>();
    expect(list.items).toHaveLength(COUNT);
    const avg = res.text.length / COUNT;
    expect(avg).toBeGreaterThan(4000);
    expect(avg).toBeLessThan(5500);
    expect(took).toBeLessThan(4000);
  });

  it('pages through it with limit=500 and a field selector without slowing down', async () => {
    const t0 = performance.now();
    let cont = '';
    let total = 0;
    let pages = 0;
    do {
      const res = await wire.get(`/api/v1/pods?limit=500${cont === '' ? '' : `&continue=${cont}`}`);
      const page = res.json<{ items: unknown[]; metadata: { continue?: string } }>();
      total += page.items.length;
      cont = page.metadata.continue ?? '';
      pages++;
    } while (cont !== '');
    expect(total).toBe(COUNT);
    expect(pages).toBe(COUNT / 500);
    const selected = await wire.get('/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-7');
    expect(selected.json<{ items: unknown[] }>().items).toHaveLength(COUNT / 100);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('streams watch events as they happen', async () => {
    const w = await wire.watch(
      `/api/v1/namespaces/load/pods?watch=1&resourceVersion=${api.store.resourceVersion}&labelSelector=app%3Dapp-3`,
    );
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) {
      api.store.patch('pods', `pod-${String(i).padStart(5, '0')}`, 'load', 'merge', {
        metadata: { labels: { touched: String(i) } },
      });
    }
    for (let i = 0; i < 100; i++) expect((await w.next()).type).toBe('MODIFIED');
    expect(performance.now() - t0).toBeLessThan(5000);
    w.close();
  });
});
