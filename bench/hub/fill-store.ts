// Fills a hub data dir with recorded pods, as if kubelet had listed them
// through the hub: `node fill-store.ts '{"dataDir":..,"count":..,"perList":..}'`.
// Run as a child so the benchmark process does not carry the parsing garbage.
// Writing 100,000 pods through a kube-apiserver double would need the double
// to hold 460 MB; the store gets exactly the same records this way, through
// the same CacheManager recorder the hub uses.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { CacheManager } from '../../edge-hub/cache/cache-manager.ts';
import type { HubRequest } from '../../edge-hub/hub-request.ts';
import { parseRequestInfo } from '../../src/kube/request-info.ts';
import { silentLogger } from '../../src/log.ts';
import { benchPod, nodeName, NODE_COUNT } from './pod-fixture.ts';

const argsSchema = z.object({
  dataDir: z.string().min(1),
  count: z.number().int().positive(),
  perList: z.number().int().positive(),
});

export function fillNamespace(k: number): string {
  return `bench-${k}`;
}

async function fill(args: z.infer<typeof argsSchema>): Promise<void> {
  const cache = await CacheManager.open({ dataDir: args.dataDir, log: silentLogger() });
  try {
    const lists = Math.ceil(args.count / args.perList);
    for (let k = 0; k < lists; k++) {
      const namespace = fillNamespace(k);
      const path = `/api/v1/namespaces/${namespace}/pods`;
      const info = parseRequestInfo('GET', path);
      if (info instanceof Error) throw info;
      const req: HubRequest = { component: 'kubelet', info, query: new URLSearchParams() };
      const first = k * args.perList;
      const items = [];
      for (let i = first; i < Math.min(args.count, first + args.perList); i++) {
        const pod = benchPod(i, nodeName(i % NODE_COUNT), namespace);
        items.push({
          ...pod,
          metadata: {
            ...pod.metadata,
            uid: randomUUID(),
            resourceVersion: String(1000 + i),
            creationTimestamp: '2026-01-01T00:00:00Z',
          },
        });
      }
      const body = JSON.stringify({
        kind: 'PodList',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(1000 + args.count) },
        items,
      });
      const recorder = cache.recorder(req, 200, { 'content-type': 'application/json' });
      if (recorder === undefined) throw new Error(`the cache would not record ${path}`);
      recorder.write(Buffer.from(body));
      await recorder.end();
    }
    const cached = (await cache.summary()).reduce((n, row) => n + row.objects, 0);
    if (cached !== args.count) {
      throw new Error(`the store holds ${cached} objects after the fill, expected ${args.count}`);
    }
  } finally {
    await cache.close();
  }
}

await fill(argsSchema.parse(JSON.parse(process.argv[2] ?? '{}')));
