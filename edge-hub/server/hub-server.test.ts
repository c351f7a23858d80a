import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import httpProxy from 'http-proxy';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '../../src/log.ts';
import type { HubRequest, ResponseRecorder } from '../hub-request.ts';
import { HubMetrics } from '../hub-metrics.ts';
import { RemoteProxy } from '../remote/remote-proxy.ts';
import type { UpstreamState } from '../upstream/health-checker.ts';
import { anonymousCredentials, startKubeconfigCredentials } from '../upstream/credentials.ts';
import { FakeApiServer } from '../../test/apiserver/server.ts';
import { createUpstream, destroyUpstreams, type Upstream } from '../upstream/upstream.ts';
import { KUBECTL_UA, KUBELET_UA, call, until, type Reply } from '../../test/hub/hub-harness.ts';
import { blackHole } from '../../test/support/black-hole.ts';
import { HubServer, UNKNOWN_UPSTREAM_WAIT_MS } from './hub-server.ts';

const PROTOBUF_ACCEPT = 'application/vnd.kubernetes.protobuf,application/json';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
type Answer = Pick<Reply, 'status' | 'headers' | 'body'>;

/** A stand-in apiserver whose behaviour each test sets. */
class Upstream0 {
  readonly server: Server;
  handler: Handler = (_req, res) => json(res, 200, { kind: 'Pod' });
  readonly seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }> = [];
  url = '';
  constructor() {
    this.server = createServer((req, res) => {
      this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      this.handler(req, res);
    });
  }
  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

function json(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

class FakeRecorder implements ResponseRecorder {
  readonly chunks: Buffer[] = [];
  ended = false;
  aborted: string | undefined;
  write(chunk: Buffer): void {
    this.chunks.push(chunk);
  }
  end(): Promise<void> {
    this.ended = true;
    return Promise.resolve();
  }
  abort(reason: string): void {
    this.aborted = reason;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

/** Opens a streaming request; `done` settles when the body ends (or rejects when it breaks). */
function open(url: string, headers: Record<string, string>) {
  const chunks: string[] = [];
  let response: IncomingMessage | undefined;
  const req = httpRequest(url, { headers, agent: false });
  const done = new Promise<string>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      response = res;
      res.setEncoding('utf8');
      res.on('data', (c: string) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => resolve(chunks.join('')));
    });
  });
  done.catch(() => {});
  req.end();
  return { req, done, text: () => chunks.join(''), response: () => response };
}

interface Harness {
  hub: string;
  server: HubServer;
  remote: RemoteProxy;
  recorders: FakeRecorder[];
  served: HubRequest[];
  closedWatches: () => number;
  expiredWatches: () => number;
  failures: Array<{ upstream: string; reason: string }>;
  /** `cacheKnows`: what the offline side says of every read (LocalProxy.answersExactly). */
  routing: { targets: Upstream[]; state: UpstreamState; cacheKnows: boolean };
  upstream(url: string, auth?: string): Upstream;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function harness(opts: { cacheAgents?: string[] } = {}): Promise<Harness> {
  const recorders: FakeRecorder[] = [];
  const served: HubRequest[] = [];
  const failures: Harness['failures'] = [];
  let closed = 0;
  let expired = 0;
  const upstreams: Upstream[] = [];
  const routing = { targets: [] as Upstream[], state: 'up' as UpstreamState, cacheKnows: true };
  const remote = new RemoteProxy({
    health: {
      reportSuccess: () => {},
      reportFailure: (u, reason) => failures.push({ upstream: u.name, reason }),
    },
    connectTimeoutMs: 1000,
    log: silentLogger(),
  });
  const registry = new Registry();
  const server = new HubServer({
    cacheAgents: opts.cacheAgents ?? ['kubelet'],
    routing: { routable: () => routing.targets, overall: () => routing.state },
    remote,
    cache: {
      isCacheable: (r: HubRequest) => ['get', 'list', 'watch'].includes(r.info.verb),
      recorder: () => {
        const rec = new FakeRecorder();
        recorders.push(rec);
        return rec;
      },
    },
    local: {
      serve: (_req: IncomingMessage, res: ServerResponse, hubReq: HubRequest) => {
        served.push(hubReq);
        res.setHeader('X-Edgebox-Source', 'cache');
        json(res, 200, { kind: 'PodList', items: [] });
        return Promise.resolve();
      },
      closeWatches: () => {
        closed++;
      },
      expireWatches: () => {
        expired++;
      },
      openWatches: () => 0,
      answersExactly: () => Promise.resolve(routing.cacheKnows),
    },
    metrics: new HubMetrics(registry, () => 0),
    endpoints: {
      isReady: () => true,
      cacheLoss: () => undefined,
      upstreamUp: () => routing.state === 'up',
      registry,
      status: () => Promise.reject(new Error('not used')),
    },
    log: silentLogger(),
  });
  const addr = await server.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(async () => {
    await server.close(100);
    destroyUpstreams(upstreams);
  });
  return {
    hub: `http://127.0.0.1:${addr.port}`,
    server,
    remote,
    recorders,
    served,
    closedWatches: () => closed,
    expiredWatches: () => expired,
    failures,
    routing,
    upstream: (url, auth) => {
      const creds = anonymousCredentials(url);
      if (auth !== undefined) creds.authorization = () => Promise.resolve(auth);
      const u = createUpstream(url, creds);
      upstreams.push(u);
      return u;
    },
  };
}

async function apiserver(): Promise<Upstream0> {
  const a = new Upstream0();
  await a.start();
  cleanups.push(() => a.stop());
  return a;
}

/** A URL where nothing listens. */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

describe('HubServer routing', () => {
  it('forwards a cache agent read, asks upstream for JSON and records the answer', async () => {
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url)];
    const r = await call(`${h.hub}/api/v1/namespaces/default/pods/p1`, {
      headers: { 'User-Agent': KUBELET_UA, Accept: PROTOBUF_ACCEPT, 'Accept-Encoding': 'gzip' },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-edgebox-source']).toBe('upstream');
    expect(JSON.parse(r.body)).toEqual({ kind: 'Pod' });
    expect(api.seen[0]?.headers.accept).toBe('application/json');
    expect(api.seen[0]?.headers['accept-encoding']).toBe('identity');
    await until(() => h.recorders[0]?.ended === true, 'the recorder to end');
    expect(h.recorders[0]?.text()).toBe('{"kind":"Pod"}');
    expect(h.served).toEqual([]);
  });

  it('forwards other clients untouched and records nothing', async () => {
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url)];
    const r = await call(`${h.hub}/api/v1/pods`, {
      headers: { 'User-Agent': KUBECTL_UA, Accept: PROTOBUF_ACCEPT },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-edgebox-source']).toBe('upstream');
    expect(api.seen[0]?.headers.accept).toBe(PROTOBUF_ACCEPT);
    expect(h.recorders).toEqual([]);
  });

  it("forwards a client's own bearer token, else adds the hub's credentials", async () => {
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url, 'Bearer hub-token')];
    await call(`${h.hub}/api/v1/pods`, {
      headers: { 'User-Agent': KUBELET_UA, Authorization: 'Bearer client-token' },
    });
    await call(`${h.hub}/api/v1/pods`, { headers: { 'User-Agent': KUBELET_UA } });
    expect(api.seen.map((s) => s.headers.authorization)).toEqual([
      'Bearer client-token',
      'Bearer hub-token',
    ]);
  });

  it('answers from the cache when no upstream is routable, and 503 to other clients', async () => {
    const h = await harness();
    h.routing.targets = [];
    h.routing.state = 'down';
    const r = await call(`${h.hub}/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&limit=500`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-edgebox-source']).toBe('cache');
    expect(h.served[0]?.component).toBe('kubelet');
    expect(h.served[0]?.info.verb).toBe('list');
    expect(h.served[0]?.query.get('fieldSelector')).toBe('spec.nodeName=n1');

    const other = await call(`${h.hub}/api/v1/pods`, { headers: { 'User-Agent': KUBECTL_UA } });
    expect(other.status).toBe(503);
    expect(other.headers['x-edgebox-source']).toBe('cache');
    const status = JSON.parse(other.body) as { kind: string; reason: string; message: string };
    expect(status).toMatchObject({ kind: 'Status', reason: 'ServiceUnavailable' });
    expect(status.message).toContain('offline');
    expect(status.message).toContain('"kubectl"');
  });

  it('passes a write body to the offline answer', async () => {
    const h = await harness();
    h.routing.targets = [];
    const body = JSON.stringify({ kind: 'Lease' });
    await call(`${h.hub}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1`, {
      method: 'PUT',
      headers: { 'User-Agent': KUBELET_UA, 'Content-Type': 'application/json' },
      body,
    });
    expect(h.served[0]?.info.verb).toBe('update');
    expect(h.served[0]?.body?.toString()).toBe(body);
  });

  it('serves a read from the cache when the only server refuses connections (boot offline)', async () => {
    const h = await harness();
    const dead = h.upstream(await deadUrl());
    h.routing.targets = [dead];
    h.routing.state = 'unknown';
    const r = await call(`${h.hub}/api/v1/pods`, { headers: { 'User-Agent': KUBELET_UA } });
    expect(r.status).toBe(200);
    expect(r.headers['x-edgebox-source']).toBe('cache');
    expect(h.served).toHaveLength(1);
    expect(h.failures[0]?.upstream).toBe(dead.name);
    expect(h.failures[0]?.reason).toContain('ECONNREFUSED');
    const other = await call(`${h.hub}/api/v1/pods`, { headers: { 'User-Agent': KUBECTL_UA } });
    expect(other.status).toBe(503);
  });

  it('serves a read from the cache after a short wait when a server accepts but never answers and no server is known yet (boot)', async () => {
    const h = await harness();
    const api = await apiserver();
    api.handler = () => {}; // a dead link that still accepts: no answer, no error
    h.routing.targets = [h.upstream(api.url)];
    h.routing.state = 'unknown';
    const r = await call(`${h.hub}/api/v1/namespaces/default/pods/p1`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-edgebox-source']).toBe('cache');
    expect(api.seen).toHaveLength(1);
    // The hub's impatience is not the server's failure: only health checks decide it is down.
    expect(h.failures).toEqual([]);
  });

  it('waits for a slow upstream in the boot window when the cache cannot answer the read exactly', async () => {
    const h = await harness();
    const api = await apiserver();
    // Slower than the boot window's patience, but answering: a loaded apiserver.
    api.handler = (_req, res) => {
      setTimeout(
        () => json(res, 200, { kind: 'Pod', metadata: { name: 'p1' } }),
        3 * UNKNOWN_UPSTREAM_WAIT_MS,
      );
    };
    h.routing.targets = [h.upstream(api.url)];
    h.routing.state = 'unknown';
    h.routing.cacheKnows = false;
    const r = await call(`${h.hub}/api/v1/namespaces/default/pods/p1`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-edgebox-source']).toBe('upstream');
    expect(h.served).toHaveLength(0);
  });

  it("pays a black-holed server's connect timeout once, then answers the read from the cache", async () => {
    const h = await harness();
    const hole = await blackHole();
    cleanups.push(() => hole.close());
    const dead = h.upstream(hole.url);
    h.routing.targets = [dead];
    const forward = vi.spyOn(h.remote, 'forward');
    const r = await call(`${h.hub}/api/v1/namespaces/default/pods/p1`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-edgebox-source']).toBe('cache');
    expect(h.failures).toHaveLength(1);
    expect(h.failures[0]?.upstream).toBe(dead.name);
    expect(h.failures[0]?.reason).toContain('connect timed out after 1000ms');
    // One attempt, one failure: kubelet waited one connect timeout, not two back to back.
    expect(forward).toHaveBeenCalledTimes(1);
    // A client the cache does not serve gets a 503 naming the failure, after one timeout too.
    const other = await call(`${h.hub}/api/v1/namespaces/default/pods/p1`, {
      headers: { 'User-Agent': KUBECTL_UA },
    });
    expect(other.status).toBe(503);
    const message = (JSON.parse(other.body) as { message: string }).message;
    expect(message).toContain(`(${dead.name}: connect timed out after 1000ms)`);
  });

  it('fails over past a black-holed server after one connect timeout', async () => {
    const h = await harness();
    const hole = await blackHole();
    cleanups.push(() => hole.close());
    const api = await apiserver();
    const dead = h.upstream(hole.url);
    h.routing.targets = [dead, h.upstream(api.url)];
    const r = await call(`${h.hub}/api/v1/namespaces/default/pods/p1`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-edgebox-source']).toBe('upstream');
    expect(api.seen).toHaveLength(1);
    // One connect attempt (one timeout) to the dead server before the second.
    expect(h.failures.map((f) => f.upstream)).toEqual([dead.name]);
  });

  it('fails over to the next server when one cannot be reached', async () => {
    const h = await harness();
    const api = await apiserver();
    const dead = h.upstream(await deadUrl());
    h.routing.targets = [dead, h.upstream(api.url)];
    const r = await call(`${h.hub}/api/v1/nodes/n1`, {
      method: 'GET',
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(r.headers['x-edgebox-source']).toBe('upstream');
    expect(api.seen).toHaveLength(1);
    // A write that never reached the first server is safe to send to the second.
    const w = await call(`${h.hub}/api/v1/namespaces/default/events`, {
      method: 'POST',
      headers: { 'User-Agent': KUBELET_UA, 'Content-Type': 'application/json' },
      body: '{"kind":"Event"}',
    });
    expect(w.headers['x-edgebox-source']).toBe('upstream');
    expect(api.seen[1]?.method).toBe('POST');
    expect(h.failures.map((f) => f.upstream)).toEqual([dead.name, dead.name]);
  });

  it('never sends a write twice when the first server may have received it', async () => {
    const h = await harness();
    const first = await apiserver();
    const second = await apiserver();
    first.handler = (req) => req.socket.destroy();
    h.routing.targets = [h.upstream(first.url), h.upstream(second.url)];
    const w = await call(`${h.hub}/api/v1/namespaces/default/events`, {
      method: 'POST',
      headers: { 'User-Agent': KUBELET_UA, 'Content-Type': 'application/json' },
      body: '{"kind":"Event"}',
    });
    expect(w.status).toBe(503);
    expect(w.body).toContain('may or may not have been applied');
    expect(second.seen).toHaveLength(0);
    // A read in the same situation goes on to the next server.
    const r = await call(`${h.hub}/api/v1/pods`, { headers: { 'User-Agent': KUBELET_UA } });
    expect(r.status).toBe(200);
    expect(second.seen).toHaveLength(1);
  });

  it('refuses bodies over 3 MiB with 413 without forwarding them', async () => {
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url)];
    const url = `${h.hub}/api/v1/namespaces/default/configmaps`;
    const tooBig = 3 * 1024 * 1024 + 1;

    // Expect: 100-continue: refused before a byte of the body is sent.
    let continued = false;
    const asked = await new Promise<Answer>((resolve, reject) => {
      const req = httpRequest(url, {
        method: 'POST',
        headers: { 'User-Agent': KUBELET_UA, 'Content-Length': tooBig, Expect: '100-continue' },
        agent: false,
      });
      req.on('continue', () => {
        continued = true;
        req.end(Buffer.alloc(tooBig));
      });
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          });
          req.destroy();
        });
      });
      req.flushHeaders();
    });
    expect(continued).toBe(false);
    expect(asked.status).toBe(413);
    expect(asked.headers['x-edgebox-source']).toBe('cache');
    expect(JSON.parse(asked.body)).toMatchObject({
      kind: 'Status',
      reason: 'RequestEntityTooLarge',
      code: 413,
    });

    // Without Expect the hub answers at once and closes, as kube-apiserver
    // does; a client still writing may see the close before the answer.
    const statusOrError = (p: Promise<Answer>) =>
      p.then(
        (r) => r.status,
        (err: NodeJS.ErrnoException) => err.code,
      );
    const declared = await statusOrError(
      call(url, {
        method: 'POST',
        headers: { 'User-Agent': KUBELET_UA },
        body: Buffer.alloc(tooBig),
      }),
    );
    expect([413, 'EPIPE', 'ECONNRESET']).toContain(declared);

    const chunked = await statusOrError(
      new Promise<Answer>((resolve, reject) => {
        const req = httpRequest(url, {
          method: 'POST',
          headers: { 'User-Agent': KUBELET_UA, 'Transfer-Encoding': 'chunked' },
          agent: false,
        });
        req.on('response', (res) => {
          res.resume();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
        });
        req.on('error', reject);
        // Write until the hub answers; it must not wait for the end of the body.
        const piece = Buffer.alloc(256 * 1024, 0x20);
        let sent = 0;
        const pump = () => {
          while (sent < 16 && req.write(piece)) sent++;
          if (sent < 16) req.once('drain', pump);
        };
        pump();
      }),
    );
    expect([413, 'EPIPE', 'ECONNRESET']).toContain(chunked);
    expect(api.seen).toHaveLength(0);

    // Exactly at the limit is forwarded.
    const ok = await call(url, {
      method: 'POST',
      headers: { 'User-Agent': KUBELET_UA, 'Content-Type': 'application/json' },
      body: Buffer.alloc(3 * 1024 * 1024, 0x20),
    });
    expect(ok.status).toBe(200);
    expect(api.seen).toHaveLength(1);
  });

  it('answers a malformed path with a 400 Status', async () => {
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url)];
    const r = await call(`${h.hub}/api/v1/namespaces//pods`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(r.status).toBe(400);
    expect(r.headers['x-edgebox-source']).toBe('cache');
    expect(JSON.parse(r.body)).toMatchObject({ kind: 'Status', reason: 'BadRequest', code: 400 });
    expect(api.seen).toHaveLength(0);
  });

  it('ends a watch cleanly at an event boundary when upstream breaks mid-event', async () => {
    const h = await harness();
    const api = await apiserver();
    const upstream = h.upstream(api.url);
    h.routing.targets = [upstream];
    const event = JSON.stringify({
      type: 'ADDED',
      object: { kind: 'Pod', metadata: { name: 'a' } },
    });
    let cut: () => void = () => {};
    api.handler = (req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write(`${event}\n${event.slice(0, 20)}`);
      cut = () => req.socket.destroy();
    };
    const w = open(`${h.hub}/api/v1/pods?watch=true&resourceVersion=5`, {
      'User-Agent': KUBELET_UA,
    });
    await until(() => w.text().length > 0, 'the first event');
    expect(w.response()?.headers['x-edgebox-source']).toBe('upstream');
    cut();
    expect(await w.done).toBe(`${event}\n`);
    await until(() => h.recorders[0]?.aborted !== undefined, 'the recorder to abort');
    expect(h.recorders[0]?.ended).toBe(false);
    expect(h.failures.map((f) => f.upstream)).toEqual([upstream.name]);
  });

  it('breaks a list cut mid-body so the client sees the error, and aborts the recorder', async () => {
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url)];
    api.handler = (req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': 1000 });
      res.write('{"kind":"PodList","items":[{"kind":"Pod"');
      setImmediate(() => req.socket.destroy());
    };
    await expect(
      call(`${h.hub}/api/v1/pods`, { headers: { 'User-Agent': KUBELET_UA } }),
    ).rejects.toThrow();
    await until(() => h.recorders[0]?.aborted !== undefined, 'the recorder to abort');
    expect(h.recorders[0]?.ended).toBe(false);
  });

  it('hands a burst of watch events (one HTTP chunk each) on as one write per socket read', async () => {
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url)];
    const events = Array.from(
      { length: 20 },
      (_, i) =>
        `${JSON.stringify({ type: 'ADDED', object: { kind: 'Pod', metadata: { name: `p${i}` } } })}\n`,
    );
    api.handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      // One tick, twenty chunks: Node sends them in one go, the hub reads them in one.
      for (const e of events) res.write(e);
      res.end();
    };
    const w = open(`${h.hub}/api/v1/pods?watch=1`, { 'User-Agent': KUBELET_UA });
    expect(await w.done).toBe(events.join(''));
    await until(() => h.recorders[0]?.ended === true, 'the recorder to end');
    expect(h.recorders[0]?.text()).toBe(events.join(''));
    // Each event on its own would be twenty recorder writes (and twenty store operations).
    expect(h.recorders[0]?.chunks.length).toBeLessThanOrEqual(2);
  });

  it('forwards every request through one http-proxy instance', async () => {
    const create = vi.spyOn(httpProxy, 'createProxyServer');
    cleanups.push(() => create.mockRestore());
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url)];
    for (let i = 0; i < 3; i++) {
      const r = await call(`${h.hub}/api/v1/namespaces/default/pods/p${i}`, {
        headers: { 'User-Agent': i % 2 === 0 ? KUBELET_UA : KUBECTL_UA },
      });
      expect(r.status).toBe(200);
    }
    expect(api.seen).toHaveLength(3);
    expect(create).toHaveBeenCalledTimes(1);
  });

  it('closes the upstream watch and aborts the recorder when the client goes away', async () => {
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url)];
    let upstreamClosed = false;
    api.handler = (req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"9"}}}\n');
      res.on('close', () => {
        upstreamClosed = true;
      });
    };
    const w = open(`${h.hub}/api/v1/pods?watch=1`, { 'User-Agent': KUBELET_UA });
    await until(() => w.text().length > 0, 'the bookmark');
    w.req.destroy();
    await until(() => upstreamClosed, 'the upstream watch to close');
    await until(() => h.recorders[0]?.aborted !== undefined, 'the recorder to abort');
    expect(h.failures).toEqual([]);
  });

  it('serves /healthz, /readyz, /metrics itself, never upstream', async () => {
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url)];
    await call(`${h.hub}/api/v1/pods`, { headers: { 'User-Agent': KUBELET_UA } });
    for (const path of ['/healthz', '/readyz', '/livez']) {
      const r = await call(`${h.hub}${path}`, { headers: { 'User-Agent': KUBELET_UA } });
      expect(r.status).toBe(200);
      expect(r.body).toBe('ok');
      expect(r.headers['x-edgebox-source']).toBe('cache');
    }
    const m = await call(`${h.hub}/metrics`);
    expect(m.body).toMatch(
      /edgebox_hub_requests_total\{verb="list",component="kubelet",source="upstream",code="200"\} 1/,
    );
    expect(api.seen.map((s) => s.url)).toEqual(['/api/v1/pods']);
  });

  it('ends watches the cache served while upstream was unreachable once upstream answers', async () => {
    const h = await harness();
    h.routing.targets = [h.upstream(await deadUrl())];
    h.routing.state = 'up';
    await call(`${h.hub}/api/v1/pods?watch=1`, { headers: { 'User-Agent': KUBELET_UA } });
    expect(h.served).toHaveLength(1);
    h.server.upstreamAnswered();
    expect(h.expiredWatches()).toBe(1);
    h.server.upstreamAnswered();
    expect(h.expiredWatches()).toBe(1);
    expect(h.closedWatches()).toBe(0);
  });

  it('ends proxied watches cleanly on shutdown', async () => {
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url)];
    api.handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"9"}}}\n');
    };
    const w = open(`${h.hub}/api/v1/pods?watch=1`, { 'User-Agent': KUBELET_UA });
    await until(() => w.text().length > 0, 'the bookmark');
    await h.server.close(1000);
    expect(await w.done).toContain('BOOKMARK');
    expect(h.closedWatches()).toBe(1);
  });

  it('relays exec-style upgrades online (bytes both ways) and refuses them offline', async () => {
    const h = await harness();
    const api = await apiserver();
    let upgradeAuth: string | undefined;
    api.server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
      upgradeAuth = req.headers.authorization;
      cleanups.push(() => {
        socket.destroy();
      });
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n',
      );
      socket.on('data', (d: Buffer) => socket.write(`echo:${d.toString()}:${req.method ?? ''}`));
    });
    h.routing.targets = [h.upstream(api.url, 'Bearer hub-token')];
    const exec = `${h.hub}/api/v1/namespaces/default/pods/p1/exec?command=sh&stdin=true`;
    const upgrade = (url: string) =>
      new Promise<{ status: number; source: string | undefined; echo?: string; body?: string }>(
        (resolve, reject) => {
          const req = httpRequest(url, {
            method: 'POST',
            headers: { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'User-Agent': KUBECTL_UA },
            agent: false,
          });
          req.on('error', reject);
          req.on('upgrade', (res, socket) => {
            socket.write('ping');
            socket.once('data', (d: Buffer) => {
              resolve({
                status: res.statusCode ?? 0,
                source: res.headers['x-edgebox-source'] as string | undefined,
                echo: d.toString(),
              });
              socket.destroy();
            });
          });
          req.on('response', (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c.toString()));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                source: res.headers['x-edgebox-source'] as string | undefined,
                body,
              }),
            );
          });
          req.end();
        },
      );
    const online = await upgrade(exec);
    expect(online).toEqual({ status: 101, source: 'upstream', echo: 'echo:ping:POST' });
    expect(upgradeAuth).toBe('Bearer hub-token');
    h.routing.targets = [];
    const offline = await upgrade(exec);
    expect(offline.status).toBe(503);
    expect(offline.source).toBe('cache');
    expect(offline.body).toContain('needs a connection to kube-apiserver');
  });

  it('stops waiting on a server marked down: pending reads go to the cache, watches end', async () => {
    const h = await harness();
    const api = await apiserver();
    const upstream = h.upstream(api.url);
    h.routing.targets = [upstream];
    api.handler = (req, res) => {
      if (!(req.url ?? '').includes('watch')) return; // a silent link: no answer, ever
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"9"}}}\n');
    };
    const w = open(`${h.hub}/api/v1/pods?watch=1`, { 'User-Agent': KUBELET_UA });
    await until(() => w.text().length > 0, 'the bookmark');
    const read = call(`${h.hub}/api/v1/pods`, { headers: { 'User-Agent': KUBELET_UA } });
    await until(() => api.seen.length === 2, 'the read to reach upstream');
    // As HealthChecker does: the server leaves the routable ones, then upstreamDown().
    h.routing.targets = [];
    h.remote.upstreamDown(upstream.name);
    const r = await read;
    expect(r.headers['x-edgebox-source']).toBe('cache');
    expect(h.served.map((q) => q.info.verb)).toEqual(['list']);
    expect(await w.done).toContain('BOOKMARK');
  });
});

/** Writes `bytes` on a new connection to `url` and collects everything until the hub closes it. */
function rawExchange(url: string, bytes: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

/** A stand-in apiserver that writes raw bytes, for answers Node's server would never send. */
async function rawApiserver(answer: (socket: Socket) => void): Promise<string> {
  const server = createNetServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => answer(socket));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function podAnswer(req: IncomingMessage, res: ServerResponse): void {
  json(res, 200, { kind: 'Pod', metadata: { name: (req.url ?? '').split('/').pop() } });
}

describe('HubServer relaying reads', () => {
  it('relays reads and writes on one kept connection, recording what a cache agent reads', async () => {
    const h = await harness();
    const api = await apiserver();
    api.handler = (req, res) => {
      if (req.method === 'GET') return podAnswer(req, res);
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => json(res, 201, { kind: 'Event', got: body }));
    };
    h.routing.targets = [h.upstream(api.url)];
    const forward = vi.spyOn(h.remote, 'forward');
    // One connection for all three, as client-go's transport reuses it.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const headers = { 'User-Agent': KUBELET_UA };
    const first = await call(`${h.hub}/api/v1/namespaces/default/pods/a`, { headers, agent });
    const write = await call(`${h.hub}/api/v1/namespaces/default/events`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: '{"kind":"Event"}',
      agent,
    });
    const third = await call(`${h.hub}/api/v1/namespaces/default/pods/c`, { headers, agent });
    expect([first.status, write.status, third.status]).toEqual([200, 201, 200]);
    expect(first.json()).toEqual({ kind: 'Pod', metadata: { name: 'a' } });
    expect(write.json()).toEqual({ kind: 'Event', got: '{"kind":"Event"}' });
    expect(third.json()).toEqual({ kind: 'Pod', metadata: { name: 'c' } });
    for (const r of [first, write, third]) expect(r.headers['x-edgebox-source']).toBe('upstream');
    expect(forward).toHaveBeenCalledTimes(3);
    // Recorded: JSON asked for, the body teed into the recorder.
    expect(api.seen[0]?.headers.accept).toBe('application/json');
    await until(() => h.recorders[0]?.ended === true, 'the recorder to end');
    expect(JSON.parse(h.recorders[0]?.text() ?? '')).toEqual(first.json());
  });

  it('answers pipelined reads in order and honours Connection: close', async () => {
    const h = await harness();
    const api = await apiserver();
    api.handler = podAnswer;
    h.routing.targets = [h.upstream(api.url)];
    const get = (name: string, extra = '') =>
      `GET /api/v1/namespaces/default/pods/${name} HTTP/1.1\r\nHost: hub\r\n` +
      `User-Agent: ${KUBECTL_UA}\r\n${extra}\r\n`;
    const wire = await rawExchange(h.hub, get('a') + get('b', 'Connection: close\r\n'));
    const answers = wire.split(/(?=HTTP\/1\.1 )/);
    expect(answers).toHaveLength(2);
    expect(answers[0]).toContain('"name":"a"');
    expect(answers[1]).toContain('"name":"b"');
    expect(answers[1]).toMatch(/\r\nConnection: close\r\n/i);
    for (const a of answers) expect(a).toContain('\r\nX-Edgebox-Source: upstream\r\n');
    expect(api.seen.map((r) => r.url.split('/').pop())).toEqual(['a', 'b']);
  });

  it('retries a read once on a new connection when a kept one was closed, counting no failure', async () => {
    const h = await harness();
    const api = await apiserver();
    const perSocket = new WeakMap<object, number>();
    api.handler = (req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1;
      perSocket.set(req.socket, n);
      // Reused connections die as the request arrives (a server's idle timeout racing it).
      if (n > 1) req.socket.destroy();
      else podAnswer(req, res);
    };
    h.routing.targets = [h.upstream(api.url)];
    const headers = { 'User-Agent': KUBECTL_UA };
    for (const name of ['a', 'b', 'c']) {
      const r = await call(`${h.hub}/api/v1/namespaces/default/pods/${name}`, { headers });
      expect(r.json()).toMatchObject({ metadata: { name } });
    }
    expect(api.seen).toHaveLength(5); // a; b on a's connection (cut), then anew; same for c
    expect(h.failures).toEqual([]);
  });

  it('relays a chunked answer as it streams and records it de-chunked', async () => {
    const h = await harness();
    const api = await apiserver();
    const parts = ['{"kind":"PodList",', '"items":[{"kind":"Pod"}', ']}'];
    api.handler = (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }); // no length: chunked
      const next = (i: number) => {
        if (i === parts.length) return res.end();
        res.write(parts[i]);
        setImmediate(() => next(i + 1));
      };
      next(0);
    };
    h.routing.targets = [h.upstream(api.url)];
    const r = await call(`${h.hub}/api/v1/pods`, { headers: { 'User-Agent': KUBELET_UA } });
    expect(r.body).toBe(parts.join(''));
    expect(r.headers['transfer-encoding']).toBe('chunked');
    await until(() => h.recorders[0]?.ended === true, 'the recorder to end');
    expect(h.recorders[0]?.text()).toBe(parts.join(''));
  });

  it('keeps a stalled client’s answer and its recording intact while other reads go on', async () => {
    // Upstream reads land in reused buffers: one may take the next read only
    // once the client has its bytes, and the recorder keeps its own copy.
    const h = await harness();
    const api = await apiserver();
    const numbers = Array.from({ length: 1_200_000 }, (_, i) => i).join(' ');
    const big = `{"kind":"ConfigMapList","items":[],"metadata":{"note":"${numbers}"}}`;
    api.handler = (req, res) => {
      if (req.url?.includes('/configmaps') === true) {
        res.writeHead(200, { 'Content-Type': 'application/json' }); // chunked, many reads
        for (let at = 0; at < big.length; at += 100_000) res.write(big.slice(at, at + 100_000));
        res.end();
        return;
      }
      podAnswer(req, res);
    };
    h.routing.targets = [h.upstream(api.url)];
    const { port } = new URL(h.hub);
    const stalled = connect(Number(port), '127.0.0.1');
    const received: Buffer[] = [];
    stalled.on('data', (c: Buffer) => received.push(c));
    const closed = new Promise<void>((resolve) => stalled.on('close', () => resolve()));
    stalled.pause(); // reads nothing: the hub's writes queue behind it
    stalled.write(
      `GET /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: hub\r\n` +
        `User-Agent: ${KUBELET_UA}\r\nConnection: close\r\n\r\n`,
    );
    await until(() => api.seen.length === 1, 'the list to reach upstream');
    for (let i = 0; i < 40; i++) {
      const name = `p${i}`;
      const headers = { 'User-Agent': i % 2 === 0 ? KUBELET_UA : KUBECTL_UA };
      const r = await call(`${h.hub}/api/v1/namespaces/default/pods/${name}`, { headers });
      expect(r.json()).toEqual({ kind: 'Pod', metadata: { name } });
    }
    stalled.resume();
    await closed;
    const wire = Buffer.concat(received).toString('latin1');
    const body = wire
      .slice(wire.indexOf('\r\n\r\n') + 4)
      .replace(/([0-9a-f]+)\r\n([\s\S]*?)\r\n/g, (_m, size: string, data: string) =>
        data.length === Number.parseInt(size, 16) ? data : `<bad chunk ${size}>`,
      );
    expect(body.length).toBe(big.length);
    expect(body === big).toBe(true);
    await until(() => h.recorders[0]?.ended === true, 'the list recorder to end');
    expect(h.recorders[0]?.text() === big).toBe(true);
  });

  it('relays and records a large list read over TLS byte for byte', async () => {
    const h = await harness();
    const api = new FakeApiServer({ tls: true });
    await api.start();
    cleanups.push(() => api.close());
    for (let i = 0; i < 150; i++) {
      api.store.create('configmaps', {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: `cm-${i}`, namespace: 'default' },
        data: { payload: `${i}:`.padEnd(4096, String.fromCharCode(97 + (i % 26))) },
      });
    }
    const dir = mkdtempSync(join(tmpdir(), 'hub-tls-lane-'));
    const creds = startKubeconfigCredentials(api.kubeconfigPath(dir));
    const upstream = createUpstream(creds.server, creds);
    cleanups.push(() => upstream.destroy());
    await creds.ready();
    h.routing.targets = [upstream];
    const path = '/api/v1/namespaces/default/configmaps';
    const through = await call(`${h.hub}${path}`, { headers: { 'User-Agent': KUBELET_UA } });
    expect(through.headers['x-edgebox-source']).toBe('upstream');
    const items = (
      through.json() as { items: Array<{ metadata: { name: string }; data: { payload: string } }> }
    ).items.filter((cm) => cm.metadata.name.startsWith('cm-'));
    expect(items).toHaveLength(150);
    expect(through.body.length).toBeGreaterThan(600_000);
    expect(items.every((cm) => cm.data.payload.startsWith(`${cm.metadata.name.slice(3)}:`))).toBe(
      true,
    );
    await until(() => h.recorders[0]?.ended === true, 'the recorder to end');
    expect(h.recorders[0]?.text() === through.body).toBe(true);
  });

  it('cuts the client and records nothing when upstream frames its answer wrongly', async () => {
    const h = await harness();
    const url = await rawApiserver((socket) => {
      socket.write(
        'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' +
          '5\r\n{"a":\r\nzz\r\n',
      );
    });
    h.routing.targets = [h.upstream(url)];
    await expect(
      call(`${h.hub}/api/v1/pods`, { headers: { 'User-Agent': KUBELET_UA } }),
    ).rejects.toThrow();
    await until(() => h.failures.length > 0, 'the failure to be reported');
    expect(h.failures).toEqual([
      { upstream: url, reason: `${url} closed the response before it was complete` },
    ]);
    // Broken in its first read: the recorder was never started, or was aborted.
    expect(h.recorders.filter((rec) => rec.ended)).toEqual([]);
  });

  it('answers a read whose answer head is malformed from the cache', async () => {
    const h = await harness();
    const url = await rawApiserver((socket) => {
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab');
    });
    h.routing.targets = [h.upstream(url)];
    const r = await call(`${h.hub}/api/v1/pods`, { headers: { 'User-Agent': KUBELET_UA } });
    expect(r.headers['x-edgebox-source']).toBe('cache');
    expect(h.served.map((q) => q.info.verb)).toEqual(['list']);
    expect(h.recorders).toEqual([]);
  });

  it('leaves a request Node would refuse to Node (a smuggling attempt never reaches upstream)', async () => {
    const h = await harness();
    const api = await apiserver();
    h.routing.targets = [h.upstream(api.url)];
    const wire = await rawExchange(
      h.hub,
      'GET /api/v1/pods HTTP/1.1\r\nHost: hub\r\nContent-Length: 4\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/v1/secrets HTTP/1.1\r\nHost: hub\r\n\r\n',
    );
    expect(wire).toMatch(/^HTTP\/1\.1 400 /);
    expect(api.seen).toEqual([]);
  });

  it('lets a read under way finish on shutdown and closes idle connections', async () => {
    const h = await harness();
    const api = await apiserver();
    let release: () => void = () => {};
    api.handler = (req, res) => {
      if ((req.url ?? '').endsWith('/slow')) release = () => podAnswer(req, res);
      else podAnswer(req, res);
    };
    h.routing.targets = [h.upstream(api.url)];
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const headers = { 'User-Agent': KUBECTL_UA };
    await call(`${h.hub}/api/v1/namespaces/default/pods/idle`, { headers, agent });
    const idleSocket = Object.values(agent.freeSockets).flat()[0];
    const idleClosed = new Promise<void>((r) => idleSocket?.once('close', () => r()));
    const slow = call(`${h.hub}/api/v1/namespaces/default/pods/slow`, { headers });
    await until(() => api.seen.length === 2, 'the slow read to reach upstream');
    const closed = h.server.close(10_000);
    await idleClosed;
    release();
    expect((await slow).json()).toMatchObject({ metadata: { name: 'slow' } });
    await closed;
  });
});
