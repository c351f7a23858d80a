import { request, type ClientRequest } from 'node:http';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { FakeApiServer } from '../../test/apiserver/server.ts';
import { failedRow, progress, verdict, type BenchRow } from './bench-report.ts';
import { HubProcess } from './hub-process.ts';
import { formatMs, summarizeLatencies } from './latency-stats.ts';

/**
 * What one upstream watch per resource saves: 1, 5 and 25 local watchers
 * of Services and of EndpointSlices (client-go's start: LIST at
 * resourceVersion=0, then WATCH from it) through one hub, with sharing
 * (the default) and with `--shared-resources none`, while the objects
 * churn upstream. Counted between the hub and the double: LIST and WATCH
 * requests (the double's log) and bytes both ways (a counting TCP relay).
 * Timed: from a change made upstream to its event at the last watcher.
 */

const SERVICES = '/api/v1/services';
const SLICES = '/apis/discovery.k8s.io/v1/endpointslices';
const NAMESPACE = 'shared-bench';
const OBJECTS = 50;
const CHANGES = 200;
const CHANGE_EVERY_MS = 5;
const UAS = [
  'kubelet/v1.32.0 (linux/amd64) kubernetes/70d3cc9',
  'kube-proxy/v1.32.0 (linux/amd64) kubernetes/70d3cc9',
  'coredns/v1.11.3 (linux/amd64) kubernetes/a866cbe',
];

/** A TCP relay in front of the double that counts the bytes the hub exchanges with it. */
class CountingRelay {
  bytes = 0;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server) {
    this.#server = server;
  }

  static start(upstreamPort: number): Promise<CountingRelay> {
    const server = createServer();
    const relay = new CountingRelay(server);
    server.on('connection', (client) => {
      const upstream = connect(upstreamPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        relay.#sockets.add(s);
        s.on('close', () => relay.#sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
        s.on('data', (chunk: Buffer) => {
          relay.bytes += chunk.length;
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(relay)));
  }

  get url(): string {
    const a = this.#server.address();
    return `http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`;
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** One local watcher: LIST at resourceVersion=0, then WATCH; when each change reached it. */
class Watcher {
  /** change number -> performance.now() on arrival. */
  readonly arrivals = new Map<number, number>();
  #req: ClientRequest | undefined;

  readonly hubUrl: string;
  readonly path: string;
  readonly userAgent: string;

  constructor(hubUrl: string, path: string, userAgent: string) {
    this.hubUrl = hubUrl;
    this.path = path;
    this.userAgent = userAgent;
  }

  async start(): Promise<void> {
    const headers = { 'User-Agent': this.userAgent, Accept: 'application/json' };
    const list = await fetch(`${this.hubUrl}${this.path}?resourceVersion=0`, { headers });
    if (list.status !== 200) throw new Error(`LIST ${this.path} answered ${list.status}`);
    const rv = ((await list.json()) as { metadata: { resourceVersion: string } }).metadata
      .resourceVersion;
    const url = `${this.hubUrl}${this.path}?watch=1&allowWatchBookmarks=true&resourceVersion=${rv}`;
    await new Promise<void>((resolve, reject) => {
      const req = request(url, { headers, agent: false }, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`WATCH ${this.path} answered ${res.statusCode}`));
          return;
        }
        resolve();
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const now = performance.now();
          buffered += chunk;
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            const churn = /"churn":"(\d+)"/.exec(line)?.[1];
            if (churn !== undefined) this.arrivals.set(Number(churn), now);
          }
        });
        res.on('error', () => undefined);
      });
      req.on('error', reject);
      req.end();
      this.#req = req;
    });
  }

  stop(): void {
    this.#req?.destroy();
  }
}

function seed(api: FakeApiServer): void {
  api.store.create('namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: NAMESPACE },
  });
  for (let i = 0; i < OBJECTS; i++) {
    const name = `svc-${i}`;
    api.store.create('services', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: NAMESPACE },
      spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    });
    api.store.create('endpointslices', {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name, namespace: NAMESPACE, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [`10.244.${i >> 8}.${i & 255}`], conditions: { ready: true } }],
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    });
  }
}

interface RunResult {
  lists: number;
  watches: number;
  bytes: number;
  /** Change made upstream -> its event at the last watcher started, in ms. */
  lastWatcherMs: number[];
}

/** Change i: Services when even, EndpointSlices when odd, object i mod OBJECTS, labelled churn=i. */
function makeChange(api: FakeApiServer, i: number): void {
  const resource = i % 2 === 0 ? 'services' : 'endpointslices';
  api.store.patch(resource, `svc-${i % OBJECTS}`, NAMESPACE, 'merge', {
    metadata: { labels: { churn: String(i) } },
  });
}

async function oneRun(
  api: FakeApiServer,
  relay: CountingRelay,
  launch: { command: readonly string[]; dataDir: string; logFile: string },
  watchers: number,
  shared: boolean,
): Promise<RunResult> {
  const hub = await HubProcess.spawn({
    command: launch.command,
    servers: [relay.url],
    dataDir: launch.dataDir,
    logFile: launch.logFile,
    nodeName: 'shared-bench',
    extraArgs: [
      '--cache-agents',
      'kubelet,kube-proxy,coredns',
      // No probe during the run: the bytes counted are the watchers' alone.
      '--health-interval',
      '60s',
      '--health-timeout',
      '2s',
      ...(shared ? [] : ['--shared-resources', 'none']),
    ],
  });
  const started: Watcher[] = [];
  try {
    await hub.waitReady();
    await hub.waitUpstream('up');
    api.requestLog.clear();
    relay.bytes = 0;
    for (let w = 0; w < watchers; w++) {
      for (const path of [SERVICES, SLICES]) {
        const watcher = new Watcher(hub.url, path, UAS[w % UAS.length] ?? '');
        await watcher.start();
        started.push(watcher);
      }
    }
    const madeAt: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      madeAt.push(performance.now());
      makeChange(api, i);
      await delay(CHANGE_EVERY_MS);
    }
    // Every watcher sees its resource's half of the changes.
    const deadline = performance.now() + 30_000;
    while (started.some((w) => w.arrivals.size < CHANGES / 2)) {
      if (performance.now() > deadline)
        throw new Error('not every watcher got every change in 30 s');
      await delay(20);
    }
    const lastServices = started.at(-2);
    const lastSlices = started.at(-1);
    const lastWatcherMs: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const at = (i % 2 === 0 ? lastServices : lastSlices)?.arrivals.get(i);
      const made = madeAt[i];
      if (at !== undefined && made !== undefined) lastWatcherMs.push(at - made);
    }
    const counted = (verb: string) =>
      api.requests.filter((r) => (r.path === SERVICES || r.path === SLICES) && r.verb === verb)
        .length;
    return { lists: counted('list'), watches: counted('watch'), bytes: relay.bytes, lastWatcherMs };
  } finally {
    for (const w of started) w.stop();
    await hub.stop();
  }
}

function kb(bytes: number): string {
  return `${(bytes / 1024).toFixed(0)} KB`;
}

/** The rows: upstream requests and bytes per watcher count, with and without sharing; latency to the last watcher. */
export async function measureSharedWatchers(
  launch: { command: readonly string[]; work: string; logFile: string },
  quick: boolean,
): Promise<BenchRow[]> {
  const api = new FakeApiServer();
  await api.start();
  const relay = await CountingRelay.start(api.port);
  const rows: BenchRow[] = [];
  try {
    seed(api);
    const counts = quick ? [1, 25] : [1, 5, 25];
    const results = new Map<string, RunResult>();
    for (const shared of [true, false]) {
      for (const n of counts) {
        progress(
          `${n} watchers of Services and EndpointSlices, ${shared ? 'shared' : 'not shared'}`,
        );
        const key = `${shared}/${n}`;
        try {
          const r = await oneRun(
            api,
            relay,
            { ...launch, dataDir: `${launch.work}/shared-${key.replace('/', '-')}` },
            n,
            shared,
          );
          results.set(key, r);
        } catch (err) {
          rows.push(
            failedRow(`upstream for ${n} watchers (${shared ? 'shared' : 'not shared'})`, '', err),
          );
        }
      }
    }
    const one = results.get('true/1');
    for (const shared of [true, false]) {
      for (const n of counts) {
        const r = results.get(`${shared}/${n}`);
        if (r === undefined) continue;
        const constant = one !== undefined && r.lists === one.lists && r.watches === one.watches;
        rows.push({
          measurement: `upstream, ${n} watcher${n === 1 ? '' : 's'} each of Services and EndpointSlices, ${CHANGES} changes, ${shared ? 'shared (default)' : '--shared-resources none'}`,
          measured: `${r.lists} LIST + ${r.watches} WATCH, ${kb(r.bytes)}`,
          target: shared ? 'constant in watchers' : 'reference',
          verdict: shared ? verdict(constant) : '',
        });
      }
    }
    // Every watcher count, shared, shows what the fan-out costs; not shared is the reference.
    const last = Math.max(...counts);
    const latencyRuns = [...counts.map((n) => ({ n, shared: true })), { n: last, shared: false }];
    for (const { n, shared } of latencyRuns) {
      const r = results.get(`${shared}/${n}`);
      if (r === undefined) continue;
      const s = summarizeLatencies(r.lastWatcherMs);
      const held = shared && n === last;
      rows.push({
        measurement: `event delivery, change upstream -> watcher ${n} of each resource, ${shared ? 'shared' : 'not shared'}`,
        measured: `p50 ${formatMs(s.p50Ms)}, p99 ${formatMs(s.p99Ms)} (${s.count} events)`,
        target: held ? 'p99 ≤ 50 ms' : 'reference',
        verdict: held ? verdict(s.p99Ms <= 50) : '',
      });
    }
  } finally {
    await relay.stop();
    await api.close();
  }
  return rows;
}
