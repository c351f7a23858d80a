import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from './server.ts';
import { WireClient } from './wire-client.ts';

/**
 * Sizes EdgeHub meets on a big node: 10,000 pods of ~4.6 KB, listed whole,
 * paged and watched. How fast is measured by `npm run bench -- hub`, not here.
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

  it('serves a list of 10,000 pods of ~4.6 KB', async () => {
    const res = await wire.get('/api/v1/pods');
    const list = res.json<{ items: Array<{ metadata: { name: string } }> }>();
    expect(list.items).toHaveLength(COUNT);
    const avg = res.text.length / COUNT;
    expect(avg).toBeGreaterThan(4000);
    expect(avg).toBeLessThan(5500);
  });

  it('pages through it with limit=500, each page continuing where the last ended', async () => {
    const seen = new Set<string>();
    let cont = '';
    let total = 0;
    let pages = 0;
    do {
      const res = await wire.get(`/api/v1/pods?limit=500${cont === '' ? '' : `&continue=${cont}`}`);
      const page = res.json<{
        items: Array<{ metadata: { name: string } }>;
        metadata: { continue?: string };
      }>();
      total += page.items.length;
      for (const item of page.items) seen.add(item.metadata.name);
      cont = page.metadata.continue ?? '';
      pages++;
    } while (cont !== '');
    expect(total).toBe(COUNT);
    expect(pages).toBe(COUNT / 500);
    expect(seen.size).toBe(COUNT);
    const selected = await wire.get('/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-7');
    expect(selected.json<{ items: unknown[] }>().items).toHaveLength(COUNT / 100);
  });

  it('streams watch events as they happen', async () => {
    const w = await wire.watch(
      `/api/v1/namespaces/load/pods?watch=1&resourceVersion=${api.store.resourceVersion}&labelSelector=app%3Dapp-3`,
    );
    for (let i = 0; i < 1000; i++) {
      api.store.patch('pods', `pod-${String(i).padStart(5, '0')}`, 'load', 'merge', {
        metadata: { labels: { touched: String(i) } },
      });
    }
    // app-3 is every tenth pod: 100 of the 1,000 patched, in the order they were patched.
    for (let i = 0; i < 100; i++) {
      const event = await w.next();
      expect(event.type).toBe('MODIFIED');
      expect((event.object as { metadata: { name: string } }).metadata.name).toBe(
        `pod-${String(i * 10 + 3).padStart(5, '0')}`,
      );
    }
    w.close();
  });
});
