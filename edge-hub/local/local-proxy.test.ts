import {
  request as httpRequest,
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { rm } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.ts';
import { CacheManager } from '../cache/cache-manager.ts';
import {
  hubRequest,
  list,
  names,
  pod,
  record,
  tempDataDir,
  watchEvent,
} from '../cache/recording-fixtures.ts';
import { LocalProxy } from './local-proxy.ts';
import { leaseProtobufBody } from '../../test/support/kubelet-protobuf.ts';

let dir: string;
let cache: CacheManager;
let local: LocalProxy;
let server: Server;
let base: string;
let now: number;
/** Every request the test server answered, with the offline answer's completion. */
let answers: Array<{ url: string; res: ServerResponse; done: Promise<void> }>;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

beforeEach(async () => {
  dir = await tempDataDir();
  now = Date.parse('2024-05-01T10:00:00Z');
  cache = await CacheManager.open({ dataDir: `${dir}/hub`, log: silentLogger() });
  local = new LocalProxy({
    cache,
    log: silentLogger(),
    nodeName: 'node-a',
    clock: () => now,
    bookmarkIntervalMs: 25,
  });
  answers = [];
  server = createServer((req, res) => {
    const done = readBody(req).then((body) => {
      const component = req.headers['user-agent'] ?? 'kubelet';
      const hubReq = hubRequest(
        component,
        req.method ?? 'GET',
        req.url ?? '/',
        body.length > 0 ? body : undefined,
      );
      return local.serve(req, res, hubReq);
    });
    answers.push({ url: req.url ?? '/', res, done });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  local.closeWatches();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await cache.close();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

async function call(
  method: string,
  path: string,
  opts: { component?: string; body?: unknown; contentType?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { 'user-agent': opts.component ?? 'kubelet' };
  let body: string | Buffer | undefined;
  if (opts.body !== undefined) {
    body = Buffer.isBuffer(opts.body) ? opts.body : JSON.stringify(opts.body);
    headers['content-type'] = opts.contentType ?? 'application/json';
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    json: JSON.parse(text) as Record<string, unknown>,
  };
}

const podObj = (name: string, o: Parameters<typeof pod>[1]) => ({
  kind: 'Pod',
  apiVersion: 'v1',
  ...pod(name, o),
});

async function recordList(component: string, path: string, body: Buffer): Promise<void> {
  await record(cache, hubRequest(component, 'GET', path), body);
}

describe('offline reads', () => {
  it('answers GET from the cache, 503 for an object never seen, and 404 only where a known scope proves it gone', async () => {
    await record(
      cache,
      hubRequest('kubelet', 'GET', '/api/v1/namespaces/default/pods/a'),
      JSON.stringify(podObj('a', { rv: '5' })),
    );
    const hit = await call('GET', '/api/v1/namespaces/default/pods/a');
    expect(hit.status).toBe(200);
    expect(hit.headers.get('x-edgebox-source')).toBe('cache');
    expect(hit.json).toMatchObject({
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: { name: 'a', resourceVersion: '5' },
    });
    // Never seen, and no list says it is gone: the node cannot know.
    const unknown = await call('GET', '/api/v1/namespaces/default/pods/nope');
    expect(unknown.status).toBe(503);
    expect(unknown.headers.get('x-edgebox-source')).toBe('cache');
    expect(unknown.json).toMatchObject({ kind: 'Status', code: 503, reason: 'ServiceUnavailable' });
    expect(unknown.json.message).toContain('kubelet never read pods "nope" in namespace default');
    expect(unknown.json.message).toContain('kube-apiserver is unreachable');
    // A scope that would hold it lists it no more: now its absence is known.
    await recordList(
      'kubelet',
      '/api/v1/namespaces/default/pods',
      list('PodList', '9', [pod('a', { rv: '5' })]),
    );
    const miss = await call('GET', '/api/v1/namespaces/default/pods/nope');
    expect(miss.status).toBe(404);
    expect(miss.json).toMatchObject({
      kind: 'Status',
      code: 404,
      reason: 'NotFound',
      message: 'pods "nope" not found',
    });
    // ...but that scope says nothing of another namespace.
    expect((await call('GET', '/api/v1/namespaces/other/pods/nope')).status).toBe(503);
  });

  it('answers 404 for a ConfigMap whose list by name came back empty (kubelet lists each by metadata.name)', async () => {
    await recordList(
      'kubelet',
      '/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dcm1',
      list('ConfigMapList', '9', []),
    );
    expect((await call('GET', '/api/v1/namespaces/default/configmaps/cm1')).status).toBe(404);
    expect((await call('GET', '/api/v1/namespaces/default/configmaps/cm2')).status).toBe(503);
  });

  it('answers 404 for an object whose deletion it saw in a watch', async () => {
    await recordList(
      'kubelet',
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a',
      list('PodList', '10', [pod('gone', { rv: '5' })]),
    );
    await record(
      cache,
      hubRequest(
        'kubelet',
        'GET',
        '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=true&resourceVersion=10',
      ),
      watchEvent('DELETED', podObj('gone', { rv: '11' })),
    );
    expect((await call('GET', '/api/v1/namespaces/default/pods/gone')).status).toBe(404);
  });

  it('records a watch-list as a list: a pod deleted upstream between two watch-lists is gone offline', async () => {
    const path =
      '/api/v1/namespaces/default/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true';
    const initialEventsEnd = (rv: string) =>
      watchEvent('BOOKMARK', {
        kind: 'Pod',
        apiVersion: 'v1',
        metadata: { resourceVersion: rv, annotations: { 'k8s.io/initial-events-end': 'true' } },
      });
    await record(
      cache,
      hubRequest('kubelet', 'GET', path),
      watchEvent('ADDED', podObj('a', { rv: '5' })) +
        watchEvent('ADDED', podObj('b', { rv: '6' })) +
        initialEventsEnd('10'),
    );
    // b deleted upstream while no watch ran; the next watch-list no longer has it.
    await record(
      cache,
      hubRequest('kubelet', 'GET', path),
      watchEvent('ADDED', podObj('a', { rv: '5' })) +
        initialEventsEnd('20') +
        watchEvent('ADDED', podObj('c', { rv: '21' })),
    );
    const listed = await call('GET', '/api/v1/namespaces/default/pods');
    expect(listed.status).toBe(200);
    expect(names(listed.json)).toEqual(['a', 'c']);
    expect((await call('GET', '/api/v1/namespaces/default/pods/b')).status).toBe(404);
    // A watch-list cut before its initial events end changes nothing.
    await record(
      cache,
      hubRequest('kubelet', 'GET', path),
      watchEvent('ADDED', podObj('d', { rv: '30' })),
    );
    expect(names((await call('GET', '/api/v1/namespaces/default/pods')).json)).toEqual(['a', 'c']);
    // Offline, the watch-list itself: the known set, then the bookmark that ends it.
    const w = openWatch(path);
    await w.until((l) => l.some((x) => x.type === 'BOOKMARK'));
    expect(w.lines.map((l) => [l.type, l.object.metadata.name ?? ''])).toEqual([
      ['ADDED', 'a'],
      ['ADDED', 'c'],
      ['BOOKMARK', ''],
    ]);
  });

  it('serves each component only what it received online', async () => {
    const secret = {
      kind: 'Secret',
      apiVersion: 'v1',
      metadata: { name: 's', namespace: 'default', resourceVersion: '3' },
      data: {},
    };
    await record(
      cache,
      hubRequest('kubelet', 'GET', '/api/v1/namespaces/default/secrets/s'),
      JSON.stringify(secret),
    );
    expect((await call('GET', '/api/v1/namespaces/default/secrets/s')).status).toBe(200);
    const other = await call('GET', '/api/v1/namespaces/default/secrets/s', {
      component: 'kube-proxy',
    });
    expect(other.status).toBe(503);
    expect(JSON.stringify(other.json)).not.toContain('"data"');
    const listed = await call('GET', '/api/v1/secrets', { component: 'kube-proxy' });
    expect(listed.status).toBe(503);
    expect(listed.json.message).toContain('kube-proxy never listed secrets in all namespaces');
  });

  it('answers two different lists of one resource exactly, with selectors, kind and resourceVersion', async () => {
    const web = pod('web', { rv: '5', node: 'node-a', labels: { app: 'web' } });
    const db = pod('db', { rv: '6', node: 'node-b', labels: { app: 'db' } });
    const local1 = pod('local', { rv: '7', node: 'node-a', labels: { app: 'db' } });
    await recordList(
      'kubelet',
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a',
      list('PodList', '10', [web, local1]),
    );
    await recordList(
      'kubelet',
      '/api/v1/namespaces/default/pods?labelSelector=app%3Ddb',
      list('PodList', '11', [db, local1]),
    );
    const byNode = await call('GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a');
    expect(byNode.status).toBe(200);
    expect(byNode.headers.get('warning')).toBeNull();
    expect(byNode.json).toMatchObject({
      kind: 'PodList',
      apiVersion: 'v1',
      metadata: { resourceVersion: '10' },
    });
    expect(names(byNode.json)).toEqual(['local', 'web']);
    const byLabel = await call('GET', '/api/v1/namespaces/default/pods?labelSelector=app%3Ddb');
    expect(byLabel.headers.get('warning')).toBeNull();
    expect(byLabel.json).toMatchObject({ metadata: { resourceVersion: '11' } });
    expect(names(byLabel.json)).toEqual(['db', 'local']);
  });

  it('answers a scope never listed online with a 503 naming it, never with what happens to be cached', async () => {
    await recordList(
      'kubelet',
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a',
      list('PodList', '10', [pod('a', { rv: '5', labels: { app: 'web' } })]),
    );
    const answer = await call('GET', '/api/v1/pods?labelSelector=app%3Dweb');
    expect(answer.status).toBe(503);
    expect(answer.json).toMatchObject({ kind: 'Status', code: 503, reason: 'ServiceUnavailable' });
    expect(answer.json.message).toContain(
      'kubelet never listed pods in all namespaces with labelSelector app=web online',
    );
    expect(answer.json).not.toHaveProperty('items');
    // A resource never listed at all: no empty list either.
    const nothing = await call('GET', '/api/v1/namespaces/default/configmaps');
    expect(nothing.status).toBe(503);
  });

  it('answers a union of scopes that overlaps the request with a 503: two partial lists are not a whole', async () => {
    await recordList(
      'kubelet',
      '/api/v1/namespaces/a/pods',
      list('PodList', '10', [pod('p1', { rv: '5', namespace: 'a' })]),
    );
    await recordList(
      'kubelet',
      '/api/v1/namespaces/b/pods',
      list('PodList', '11', [pod('p2', { rv: '6', namespace: 'b' })]),
    );
    expect((await call('GET', '/api/v1/pods')).status).toBe(503);
    // Each namespace, and a filtered subset of one, it knows exactly.
    expect(names((await call('GET', '/api/v1/namespaces/a/pods')).json)).toEqual(['p1']);
    const subset = await call(
      'GET',
      '/api/v1/namespaces/b/pods?fieldSelector=spec.nodeName%3Dnode-a',
    );
    expect(subset.status).toBe(200);
    expect(names(subset.json)).toEqual(['p2']);
  });

  it('answers a scope from its latest list, never from an older snapshot of another scope', async () => {
    // Online: the node's pods, and once every pod of namespace edge.
    const byNode = '/api/v1/pods?fieldSelector=spec.nodeName%3Dedge-1';
    const p = (name: string, rv: string) => pod(name, { rv, namespace: 'edge', node: 'edge-1' });
    await recordList(
      'kubelet',
      byNode,
      list('PodList', '10', [p('p1', '5'), p('p2', '6'), p('p3', '7')]),
    );
    await recordList(
      'kubelet',
      '/api/v1/namespaces/edge/pods',
      list('PodList', '11', [p('p1', '5'), p('p2', '6'), p('p3', '7')]),
    );
    // p2 deleted upstream; the node's scope listed again without it.
    await recordList('kubelet', byNode, list('PodList', '20', [p('p1', '5'), p('p3', '7')]));
    const answer = await call('GET', byNode);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('warning')).toBeNull();
    expect(names(answer.json)).toEqual(['p1', 'p3']);
    expect(answer.json).toMatchObject({ metadata: { resourceVersion: '20' } });
    // The same with the state of the resource loaded (a write made it so) as when cold.
    await call('PUT', '/api/v1/nodes/node-a/status', {
      body: { kind: 'Node', apiVersion: 'v1', metadata: { name: 'node-a' } },
    });
    const again = await call('GET', `${byNode}&limit=1`);
    expect(names(again.json)).toEqual(['p1']);
    const rest = await call(
      'GET',
      `${byNode}&limit=1&continue=${encodeURIComponent(String((again.json.metadata as { continue: string }).continue))}`,
    );
    expect(names(rest.json)).toEqual(['p3']);
  });

  it('answers a filtered list exactly from an unfiltered one (an index, not a warning)', async () => {
    const pods = Array.from({ length: 30 }, (_, i) =>
      pod(`p${String(i).padStart(2, '0')}`, { rv: String(i + 1), node: `node-${i % 3}` }),
    );
    await recordList('kubelet', '/api/v1/pods', list('PodList', '100', pods));
    const answer = await call('GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1');
    expect(answer.headers.get('warning')).toBeNull();
    expect(names(answer.json)).toEqual([
      'p01',
      'p04',
      'p07',
      'p10',
      'p13',
      'p16',
      'p19',
      'p22',
      'p25',
      'p28',
    ]);
  });

  it('answers an empty list that was listed online as a complete empty list', async () => {
    await recordList(
      'kubelet',
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a',
      list('PodList', '12', []),
    );
    const answer = await call('GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('warning')).toBeNull();
    expect(answer.json).toMatchObject({
      kind: 'PodList',
      metadata: { resourceVersion: '12' },
      items: [],
    });
  });

  it('pages with limit and its own continue token', async () => {
    const pods = Array.from({ length: 5 }, (_, i) =>
      pod(`p${i}`, { rv: String(i + 1), labels: { app: 'x' } }),
    );
    await recordList('kubelet', '/api/v1/pods', list('PodList', '50', pods));
    for (const query of ['', '&labelSelector=app%3Dx']) {
      const seen: string[] = [];
      let token = '';
      let pages = 0;
      do {
        const page = await call(
          'GET',
          `/api/v1/pods?limit=2${query}${token === '' ? '' : `&continue=${encodeURIComponent(token)}`}`,
        );
        expect(page.json).toMatchObject({ metadata: { resourceVersion: '50' } });
        const items = names(page.json);
        expect(items.length).toBeLessThanOrEqual(2);
        seen.push(...items);
        token = (page.json.metadata as { continue?: string }).continue ?? '';
        pages++;
      } while (token !== '');
      expect(pages).toBe(3);
      expect(seen).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
    }
    const bad = await call('GET', '/api/v1/pods?limit=2&continue=%25%25garbage');
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ reason: 'BadRequest' });
    // A page of a list kube-apiserver started before the link dropped: 410, so
    // client-go starts the list again from the cache instead of failing.
    const upstreamToken = Buffer.from(
      JSON.stringify({ v: 'meta.k8s.io/v1', rv: 50, start: 'default/p2\u0000' }),
    ).toString('base64url');
    const foreign = await call('GET', `/api/v1/pods?limit=2&continue=${upstreamToken}`);
    expect(foreign.status).toBe(410);
    expect(foreign.json).toMatchObject({ kind: 'Status', reason: 'Expired', code: 410 });
  });

  it('answers malformed selectors with 400 Status in the apiserver words', async () => {
    const label = await call('GET', '/api/v1/pods?labelSelector=app%20in%20(');
    expect(label.status).toBe(400);
    expect(label.headers.get('x-edgebox-source')).toBe('cache');
    expect(label.json).toMatchObject({ kind: 'Status', reason: 'BadRequest' });
    const field = await call('GET', '/api/v1/pods?fieldSelector=spec.color%3Dred');
    expect(field.status).toBe(400);
    expect(field.json.message).toBe('field label not supported: spec.color');
  });
});

interface WatchLine {
  type: string;
  object: {
    kind?: string;
    metadata: { name?: string; resourceVersion?: string; annotations?: Record<string, string> };
    code?: number;
    reason?: string;
  };
}

/** Opens a watch; `lines` fills as events arrive, `ended` resolves when the server ends it. */
function openWatch(path: string, component = 'kubelet') {
  const lines: WatchLine[] = [];
  const waiters: Array<() => void> = [];
  let headers: IncomingMessage['headers'] = {};
  let status = 0;
  let ended!: Promise<void>;
  const ready = new Promise<void>((resolveReady, rejectReady) => {
    ended = new Promise<void>((resolveEnd) => {
      const req = httpRequest(base + path, { headers: { 'user-agent': component } }, (res) => {
        status = res.statusCode ?? 0;
        headers = res.headers;
        resolveReady();
        let partial = '';
        res.on('data', (chunk: Buffer) => {
          partial += chunk.toString();
          let nl: number;
          while ((nl = partial.indexOf('\n')) >= 0) {
            lines.push(JSON.parse(partial.slice(0, nl)) as WatchLine);
            partial = partial.slice(nl + 1);
          }
          for (const w of waiters.splice(0)) w();
        });
        res.on('end', () => resolveEnd());
      });
      req.on('error', rejectReady);
      req.end();
    });
  });
  const until = async (pred: (l: WatchLine[]) => boolean): Promise<void> => {
    while (!pred(lines)) await new Promise<void>((r) => waiters.push(r));
  };
  return { lines, ready, ended, until, status: () => status, headers: () => headers };
}

describe('offline watch', () => {
  beforeEach(async () => {
    await recordList(
      'kubelet',
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a',
      list('PodList', '20', [pod('old', { rv: '8' }), pod('new', { rv: '18' })]),
    );
    const w = hubRequest(
      'kubelet',
      'GET',
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=true&resourceVersion=20',
    );
    await record(
      cache,
      w,
      watchEvent('MODIFIED', podObj('old', { rv: '25' })) +
        watchEvent('ADDED', podObj('born', { rv: '26' })),
    );
  });

  it('starts from the requested resourceVersion: only newer objects, ADDED vs MODIFIED', async () => {
    const w = openWatch(
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=true&resourceVersion=20',
    );
    await w.ready;
    expect(w.status()).toBe(200);
    expect(w.headers()['x-edgebox-source']).toBe('cache');
    await w.until((l) => l.length >= 2);
    expect(w.lines.map((l) => [l.type, l.object.metadata.name])).toEqual([
      ['MODIFIED', 'old'],
      ['ADDED', 'born'],
    ]);
  });

  it('sends ADDED for everything when the resourceVersion is 0 or unset', async () => {
    for (const rv of ['0', '']) {
      const w = openWatch(
        `/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=true${rv === '' ? '' : `&resourceVersion=${rv}`}`,
      );
      await w.until((l) => l.length >= 3);
      expect(w.lines.map((l) => l.type)).toEqual(['ADDED', 'ADDED', 'ADDED']);
      expect(w.lines.map((l) => l.object.metadata.name).sort()).toEqual(['born', 'new', 'old']);
    }
  });

  it('sends BOOKMARKs when allowed, at a resourceVersion no older than what it sent', async () => {
    const w = openWatch(
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=true&resourceVersion=26&allowWatchBookmarks=true',
    );
    await w.until((l) => l.some((x) => x.type === 'BOOKMARK'));
    const bookmark = w.lines.find((l) => l.type === 'BOOKMARK');
    expect(bookmark?.object.kind).toBe('Pod');
    expect(Number(bookmark?.object.metadata.resourceVersion)).toBeGreaterThanOrEqual(26);
    const plain = openWatch(
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=true&resourceVersion=26',
    );
    await plain.ready;
    await w.until((l) => l.filter((x) => x.type === 'BOOKMARK').length >= 3);
    expect(plain.lines.filter((l) => l.type === 'BOOKMARK')).toEqual([]);
  });

  it('ends the stream at timeoutSeconds', async () => {
    const started = Date.now();
    const w = openWatch(
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=true&resourceVersion=26&timeoutSeconds=1',
    );
    await w.ended;
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(local.openWatches()).toBe(0);
  });

  it('expireWatches() ends every open watch with 410 Expired, so clients re-list', async () => {
    const a = openWatch(
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=true&resourceVersion=26',
    );
    await recordList('kubelet', '/api/v1/nodes', list('NodeList', '30', []));
    const b = openWatch('/api/v1/nodes?watch=true');
    await Promise.all([a.ready, b.ready]);
    await a.until(() => local.openWatches() === 2);
    local.expireWatches();
    await Promise.all([a.ended, b.ended]);
    expect(local.openWatches()).toBe(0);
    for (const w of [a, b]) {
      expect(w.lines.at(-1)).toMatchObject({
        type: 'ERROR',
        object: { kind: 'Status', code: 410, reason: 'Expired' },
      });
    }
  });

  it('closeWatches() (the hub stops) ends every open watch cleanly, so clients resume', async () => {
    const w = openWatch(
      '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=true&resourceVersion=26',
    );
    await w.ready;
    await w.until(() => local.openWatches() === 1);
    local.closeWatches();
    await w.ended;
    expect(local.openWatches()).toBe(0);
    expect(w.lines.filter((l) => l.type === 'ERROR')).toEqual([]);
  });

  it('refuses a watch of a scope never listed online with a 503 before any event', async () => {
    const refused = await call('GET', '/api/v1/configmaps?watch=true');
    expect(refused.status).toBe(503);
    expect(refused.json).toMatchObject({ kind: 'Status', code: 503, reason: 'ServiceUnavailable' });
    expect(refused.json.message).toContain('kubelet never listed configmaps in all namespaces');
    expect(local.openWatches()).toBe(0);
  });

  it("replays only the scope's own members: an object another scope still holds stays out", async () => {
    // An older namespace-wide snapshot still holds 'stray', deleted before the node's list.
    await recordList(
      'kubelet',
      '/api/v1/namespaces/default/pods',
      list('PodList', '19', [
        pod('old', { rv: '8' }),
        pod('new', { rv: '18' }),
        pod('stray', { rv: '3', node: 'node-a' }),
      ]),
    );
    const w = openWatch('/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a&watch=true');
    await w.until((l) => l.length >= 3);
    expect(w.lines.map((l) => l.object.metadata.name).sort()).toEqual(['born', 'new', 'old']);
  });
});

describe('slow and vanishing clients', () => {
  const COUNT = 1500;
  const BYTES = 1500 * 8 * 1024;
  beforeEach(async () => {
    const pods = Array.from({ length: COUNT }, (_, i) => ({
      ...pod(`p${String(i).padStart(4, '0')}`, { rv: String(i + 1) }),
      data: 'x'.repeat(8 * 1024),
    }));
    await recordList('kubelet', '/api/v1/pods', list('PodList', '5000', pods));
  });

  function request(path: string): Promise<{ res: IncomingMessage; destroy(): void }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(base + path, { headers: { 'user-agent': 'kubelet' } }, (res) => {
        res.pause();
        resolve({ res, destroy: () => req.destroy() });
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('replays a large resource to a watch no faster than the client reads it', async () => {
    const client = await request('/api/v1/pods?watch=true');
    const answer = answers.find((a) => a.url.includes('watch=true'));
    if (answer === undefined) throw new Error('the watch was not answered');
    let mostBuffered = 0;
    for (;;) {
      mostBuffered = Math.max(mostBuffered, answer.res.writableLength);
      // Waiting for the client to read, or everything written into memory already.
      if (answer.res.listenerCount('drain') > 0 || mostBuffered > BYTES / 2) break;
      await new Promise<void>((r) => setImmediate(r));
    }
    expect(mostBuffered).toBeLessThan(BYTES / 2);
    let events = 0;
    client.res.on('data', (chunk: Buffer) => {
      for (const byte of chunk) if (byte === 0x0a) events++;
    });
    client.res.resume();
    while (events < COUNT) await new Promise<void>((r) => setImmediate(r));
    expect(events).toBe(COUNT);
    client.destroy();
  });

  it('ends a list whose client went away while it waited for the client to read', async () => {
    const client = await request('/api/v1/pods');
    const answer = answers.find((a) => a.url === '/api/v1/pods');
    if (answer === undefined) throw new Error('the list was not answered');
    while (answer.res.listenerCount('drain') === 0) await new Promise<void>((r) => setImmediate(r));
    client.destroy();
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      answer.done.then(() => 'finished'),
      new Promise<string>((r) => {
        timer = setTimeout(() => r('still waiting for a client that is gone'), 5000);
      }),
    ]);
    clearTimeout(timer);
    expect(outcome).toBe('finished');
  });
});

describe('offline writes', () => {
  const PROTOBUF = 'application/vnd.kubernetes.protobuf';
  const LEASE = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-a';
  const lease = {
    kind: 'Lease',
    apiVersion: 'coordination.k8s.io/v1',
    metadata: { name: 'node-a', namespace: 'kube-node-lease', uid: 'u1', resourceVersion: '40' },
    spec: {
      holderIdentity: 'node-a',
      leaseDurationSeconds: 40,
      renewTime: '2024-05-01T09:59:50.000000Z',
    },
  };

  beforeEach(async () => {
    await record(cache, hubRequest('kubelet', 'GET', LEASE), JSON.stringify(lease));
    await recordList('kubelet', '/api/v1/pods', list('PodList', '90', [pod('a', { rv: '88' })]));
  });

  it('acknowledges kubelet Lease renewals locally with ever higher resourceVersions', async () => {
    const renew1 = { ...lease, spec: { ...lease.spec, renewTime: '2024-05-01T10:00:00.000000Z' } };
    const first = await call('PUT', LEASE, { body: renew1 });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-edgebox-source')).toBe('cache');
    const rv1 = Number((first.json.metadata as { resourceVersion: string }).resourceVersion);
    expect(rv1).toBeGreaterThan(90);
    expect(first.json).toMatchObject({
      kind: 'Lease',
      metadata: { uid: 'u1' },
      spec: { renewTime: '2024-05-01T10:00:00.000000Z' },
    });
    const second = await call('PUT', LEASE, { body: first.json });
    const rv2 = Number((second.json.metadata as { resourceVersion: string }).resourceVersion);
    expect(rv2).toBeGreaterThan(rv1);
    // The stored copy is what a GET now returns.
    expect((await call('GET', LEASE)).json).toMatchObject({
      metadata: { resourceVersion: String(rv2) },
    });
    // A PUT from a stale copy conflicts, as upstream would answer.
    const stale = await call('PUT', LEASE, { body: renew1 });
    expect(stale.status).toBe(409);
    expect(stale.json).toMatchObject({ reason: 'Conflict' });
    // kubelet writes protobuf: read as the apiserver reads it, kubelet's renewTime kept.
    const fromKubelet = {
      metadata: second.json.metadata as Record<string, unknown>,
      spec: { ...lease.spec, renewTime: '2024-05-01T10:00:10.654321Z' },
    };
    const proto = await call('PUT', LEASE, {
      body: leaseProtobufBody(fromKubelet),
      contentType: PROTOBUF,
    });
    expect(proto.status).toBe(200);
    expect(proto.json).toMatchObject({
      kind: 'Lease',
      apiVersion: 'coordination.k8s.io/v1',
      metadata: { name: 'node-a', uid: 'u1' },
      spec: {
        renewTime: '2024-05-01T10:00:10.654321Z',
        holderIdentity: 'node-a',
        leaseDurationSeconds: 40,
      },
    });
    const rv3 = (proto.json.metadata as { resourceVersion: string }).resourceVersion;
    expect(Number(rv3)).toBeGreaterThan(rv2);
    // From a stale copy it conflicts, as a JSON one does.
    const staleProto = await call('PUT', LEASE, {
      body: leaseProtobufBody(fromKubelet),
      contentType: PROTOBUF,
    });
    expect(staleProto.status).toBe(409);
    // A body that cannot be read is refused, and nothing is stored.
    const garbage = await call('PUT', LEASE, {
      body: Buffer.from('k8s\u0000proto'),
      contentType: PROTOBUF,
    });
    expect(garbage.status).toBe(400);
    expect(garbage.json.message).toContain('protobuf body cannot be decoded');
    expect((await call('GET', LEASE)).json).toMatchObject({
      metadata: { resourceVersion: rv3 },
      spec: { renewTime: '2024-05-01T10:00:10.654321Z' },
    });
  });

  it('acknowledges node status patches (strategic merge on conditions) and shows them to node watches', async () => {
    const node = {
      kind: 'Node',
      apiVersion: 'v1',
      metadata: { name: 'node-a', resourceVersion: '60' },
      spec: { podCIDR: '10.0.0.0/24' },
      status: {
        conditions: [
          { type: 'MemoryPressure', status: 'False', lastHeartbeatTime: '2024-05-01T09:00:00Z' },
          { type: 'Ready', status: 'True', lastHeartbeatTime: '2024-05-01T09:00:00Z' },
        ],
      },
    };
    await recordList(
      'kubelet',
      '/api/v1/nodes?fieldSelector=metadata.name%3Dnode-a',
      Buffer.from(
        JSON.stringify({
          kind: 'NodeList',
          apiVersion: 'v1',
          metadata: { resourceVersion: '61' },
          items: [node],
        }),
      ),
    );
    const w = openWatch(
      '/api/v1/nodes?fieldSelector=metadata.name%3Dnode-a&watch=true&resourceVersion=61',
    );
    await w.ready;
    const patch = {
      status: {
        '$setElementOrder/conditions': [{ type: 'MemoryPressure' }, { type: 'Ready' }],
        conditions: [{ type: 'Ready', lastHeartbeatTime: '2024-05-01T10:00:00Z' }],
      },
    };
    const answer = await call('PATCH', '/api/v1/nodes/node-a/status', {
      body: patch,
      contentType: 'application/strategic-merge-patch+json',
    });
    expect(answer.status).toBe(200);
    const status = answer.json.status as { conditions: Array<Record<string, string>> };
    expect(status.conditions).toEqual([
      { type: 'MemoryPressure', status: 'False', lastHeartbeatTime: '2024-05-01T09:00:00Z' },
      { type: 'Ready', status: 'True', lastHeartbeatTime: '2024-05-01T10:00:00Z' },
    ]);
    expect(answer.json.spec).toEqual({ podCIDR: '10.0.0.0/24' });
    const rv = (answer.json.metadata as { resourceVersion: string }).resourceVersion;
    expect(Number(rv)).toBeGreaterThan(90);
    await w.until((l) => l.some((x) => x.type === 'MODIFIED'));
    expect(w.lines.find((x) => x.type === 'MODIFIED')?.object.metadata.resourceVersion).toBe(rv);
    // kubelet registering again offline learns its node exists, as upstream would say.
    const register = await call('POST', '/api/v1/nodes', {
      body: Buffer.from('k8s\u0000'),
      contentType: 'application/vnd.kubernetes.protobuf',
    });
    expect(register.status).toBe(409);
    expect(register.json).toMatchObject({ reason: 'AlreadyExists' });
  });

  it('refuses every other write with 503 ServiceUnavailable saying nothing was applied', async () => {
    const writes: Array<[string, string, unknown]> = [
      ['POST', '/api/v1/namespaces/default/pods', pod('x', { rv: '' })],
      ['DELETE', '/api/v1/namespaces/default/pods/a', undefined],
      ['PATCH', '/api/v1/namespaces/default/pods/a/status', { status: {} }],
      ['POST', '/api/v1/namespaces/default/events', { metadata: { name: 'e' } }],
      ['PUT', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/other-node', lease],
    ];
    for (const [method, path, body] of writes) {
      const answer = await call(method, path, {
        body,
        contentType: method === 'PATCH' ? 'application/merge-patch+json' : 'application/json',
      });
      expect(answer.status, `${method} ${path}`).toBe(503);
      expect(answer.headers.get('x-edgebox-source')).toBe('cache');
      expect(answer.json).toMatchObject({
        kind: 'Status',
        reason: 'ServiceUnavailable',
        code: 503,
      });
      expect(answer.json.message).toMatch(/offline.*not applied/);
    }
    expect((await call('GET', '/api/v1/namespaces/default/pods/a')).status).toBe(200);
  });

  it('reuses the last token a component got, only while it is valid and only for that component', async () => {
    const path = '/api/v1/namespaces/default/serviceaccounts/app/token';
    const request = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: ['api'], expirationSeconds: 3600 },
    };
    const issued = {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name: 'app', namespace: 'default' },
      spec: request.spec,
      status: { token: 'secret-token-value', expirationTimestamp: '2024-05-01T11:00:00Z' },
    };
    await record(cache, hubRequest('kubelet', 'POST', path, request), JSON.stringify(issued), 201);
    const reused = await call('POST', path, { body: request });
    expect(reused.status).toBe(201);
    expect(reused.json).toMatchObject({
      status: { token: 'secret-token-value', expirationTimestamp: '2024-05-01T11:00:00Z' },
    });
    expect((await call('POST', path, { body: request, component: 'kube-proxy' })).status).toBe(503);
    const otherAudience = { ...request, spec: { audiences: ['vault'], expirationSeconds: 3600 } };
    expect((await call('POST', path, { body: otherAudience })).status).toBe(503);
    now = Date.parse('2024-05-01T11:00:01Z');
    const expired = await call('POST', path, { body: request });
    expect(expired.status).toBe(503);
    expect(expired.json.message).toMatch(/expired/);
  });
});
