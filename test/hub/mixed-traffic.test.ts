import { Agent } from 'node:http';
import { describe, expect, it } from 'vitest';
import {
  KUBECTL_UA,
  KUBELET_UA,
  NODE,
  call,
  startApiAndHub,
  until,
  type Reply,
  cleanupsAfterEach,
} from './hub-harness.ts';

const cleanups = cleanupsAfterEach();

interface Step {
  method: string;
  path: string;
  ua: string;
  body?: string;
  accept?: string;
}

/** A deterministic shuffle (a linear congruential generator), so a failure can be replayed. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/**
 * What a reply says, minus what differs between two identical requests
 * (headers such as dates; a list's resourceVersion and continue token, which
 * the writes move;
 * a Table's ages).
 */
function gist(r: Reply): unknown {
  const type = String(r.headers['content-type'] ?? '');
  if (!type.includes('json') || r.body === '') return { status: r.status, bytes: r.body.length };
  const body = r.json<{
    kind?: string;
    metadata?: { resourceVersion?: string; continue?: string };
    items?: unknown;
    rows?: unknown[];
  }>();
  // A Table's cells hold ages ("3s"): its shape is what must agree.
  if (body.kind === 'Table') return { status: r.status, kind: body.kind, rows: body.rows?.length };
  if (body.items !== undefined && body.metadata !== undefined) {
    delete body.metadata.resourceVersion;
    // A continue token carries the list's resourceVersion too.
    if (body.metadata.continue !== undefined) body.metadata.continue = 'present';
  }
  return { status: r.status, body };
}

describe('EdgeHub under mixed traffic on shared keep-alive connections', () => {
  it('answers reads, watches, writes and errors interleaved on a few connections exactly as upstream does', async () => {
    const { api, hub } = await startApiAndHub(cleanups);
    for (let i = 0; i < 6; i++) {
      api.store.create('pods', {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: `p${i}`, namespace: 'default', labels: { app: i % 2 ? 'a' : 'b' } },
        spec: { nodeName: NODE, containers: [{ name: 'c', image: 'busybox' }] },
      });
    }
    await until(() => hub.health.overall() === 'up', 'upstream up');
    const reads: Step[] = [];
    for (const ua of [KUBELET_UA, KUBECTL_UA]) {
      for (let i = 0; i < 6; i++) {
        reads.push({ method: 'GET', path: `/api/v1/namespaces/default/pods/p${i}`, ua });
      }
      reads.push(
        { method: 'GET', path: '/api/v1/namespaces/default/pods/missing', ua },
        { method: 'GET', path: '/api/v1/namespaces/default/pods?labelSelector=app%3Da', ua },
        { method: 'GET', path: `/api/v1/pods?fieldSelector=spec.nodeName%3D${NODE}`, ua },
        { method: 'GET', path: '/api/v1/namespaces/default/pods?fieldSelector=bogus%3D1', ua },
        { method: 'GET', path: '/api/v1/namespaces/default/pods?limit=2', ua },
        { method: 'GET', path: '/api/v1/namespaces/default/pods/p1/status', ua },
        {
          method: 'GET',
          path: '/api/v1/namespaces',
          ua,
          accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
        },
        { method: 'HEAD', path: '/api/v1/namespaces/default/pods/p2', ua },
        {
          method: 'GET',
          path: '/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=1&resourceVersion=0',
          ua,
        },
      );
    }
    const writes: Step[] = Array.from({ length: 6 }, (_, i) => ({
      method: 'POST',
      path: '/api/v1/namespaces/default/configmaps',
      ua: KUBELET_UA,
      body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm${i}` } }),
    }));
    const steps = shuffled([...reads, ...reads, ...writes], 7);
    const send = (base: string, s: Step, agent: Agent | undefined) =>
      call(`${base}${s.path}`, {
        method: s.method,
        headers: {
          'User-Agent': s.ua,
          ...(s.accept === undefined ? {} : { Accept: s.accept }),
          ...(s.body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        ...(s.body === undefined ? {} : { body: s.body }),
        ...(agent === undefined ? {} : { agent }),
      });

    // Three connections carry everything, as a client-go transport's pool would.
    const agent = new Agent({ keepAlive: true, maxSockets: 3 });
    cleanups.push(() => agent.destroy());
    const viaHub = await Promise.all(steps.map((s) => send(hub.url, s, agent)));
    for (const [i, s] of steps.entries()) {
      const got = viaHub[i];
      if (got === undefined) throw new Error('no reply');
      expect(got.headers['x-edgebox-source'], `${s.method} ${s.path}`).toBe('upstream');
      if (s.method === 'POST') {
        expect(got.status, s.path).toBe(201);
        continue;
      }
      // The same request straight to the apiserver answers the same (the writes touched only ConfigMaps).
      const direct = await send(api.url, s, undefined);
      if (s.path.includes('watch=1')) {
        expect(got.status).toBe(200);
        expect(got.body).toContain('"type":"ADDED"');
        continue;
      }
      expect(gist(got), `${s.method} ${s.path} (${s.ua.split('/')[0]})`).toEqual(gist(direct));
    }
    expect(api.store.list('configmaps', { namespace: 'default' })).toHaveLength(6);
  });
});
