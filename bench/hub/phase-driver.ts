// One phase of the hub benchmark on its own, for profiling and before/after
// figures without the four-minute whole run (bench/hub.ts):
//
//   npx node bench/hub/phase-driver.ts ingest [--count 20000] [--runs 3] [--cpu-prof DIR] [--threads]
//   npx node bench/hub/phase-driver.ts proxy  [--rounds 3] [--cpu-prof DIR] [--only kubelet|kubectl] [--bare] [--cpu [--paths get|list] [--threads]]
//   npx node bench/hub/phase-driver.ts offline   (10,000 pods cached online, then the offline LISTs)
//
// --hub-root DIR runs the hub of another checkout (before/after on the same machine state).
// --node-flags "..." starts the hub with those Node/V8 flags.
// --cpu-prof starts the hub child with `node --cpu-prof` and leaves the
// .cpuprofile in DIR (written when the hub exits).
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FakeApiServer } from '../../test/apiserver/server.ts';
import { renderTable, type BenchRow } from './bench-report.ts';
import { stealMeter } from './cpu-steal.ts';
import { BENCH_NAMESPACE, KUBECTL_UA, KUBELET_UA, seedCluster } from './bench-cluster.ts';
import { sourceHubCommand } from './compiled-hub.ts';
import { BareRelay } from './bare-relay.ts';
import { HubProcess } from './hub-process.ts';
import { measureIngest, processCpuMs } from './ingest.ts';
import { nodeName, podName, podNamespace } from './pod-fixture.ts';
import { runLoad } from './load-run.ts';
import { fillThroughHub, measureOfflineLists } from './offline-lists.ts';
import { measureProxyOverhead, type ProxyTarget } from './proxy-overhead.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    count: { type: 'string', default: '20000' },
    runs: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    'cpu-prof': { type: 'string' },
    only: { type: 'string' },
    threads: { type: 'boolean', default: false },
    cpu: { type: 'boolean', default: false },
    'hub-root': { type: 'string' },
    'node-flags': { type: 'string' },
    paths: { type: 'string' },
    bare: { type: 'boolean', default: false },
  },
});
const phase = positionals[0];
if (phase !== 'ingest' && phase !== 'proxy' && phase !== 'offline') {
  process.stderr.write(
    'usage: phase-driver.ts ingest|proxy|offline [options] (see the file header)\n',
  );
  process.exit(2);
}

function hubCommand(): string[] {
  const [node, ownCli] = sourceHubCommand();
  // --hub-root: another checkout's hub (e.g. `git archive HEAD` unpacked) for before/after figures.
  const root = values['hub-root'];
  const cli = root === undefined ? ownCli : join(root, 'bin/edgebox.js');
  const prof = values['cpu-prof'];
  if (node === undefined || cli === undefined) throw new Error('no hub command');
  // --node-flags: V8/Node flags for the hub (what a flag costs per request or event).
  const flags = values['node-flags']?.split(' ').filter((f) => f !== '') ?? [];
  const profile = prof === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${prof}`];
  return [node, ...flags, ...profile, cli];
}

/** CPU ms used so far by each thread of a process (Linux /proc), by thread id. */
function threadCpu(pid: number): Map<string, { name: string; ms: number }> {
  const out = new Map<string, { name: string; ms: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime + stime, in USER_HZ (100 a second)
      out.set(tid, { name, ms: (Number(fields[11]) + Number(fields[12])) * 10 });
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

/** CPU µs per request (or event) by thread name between two threadCpu() readings. */
function perThread(
  before: ReturnType<typeof threadCpu>,
  after: ReturnType<typeof threadCpu>,
  requests: number,
): string {
  const byName = new Map<string, number>();
  for (const [tid, { name, ms }] of after) {
    byName.set(name, (byName.get(name) ?? 0) + ms - (before.get(tid)?.ms ?? 0));
  }
  return [...byName]
    .filter(([, ms]) => ms > 0)
    .map(([name, ms]) => `${name} ${((ms * 1000) / requests).toFixed(0)}`)
    .join(', ');
}

/**
 * Throughput runs (16 keep-alive connections) of the proxy phase's GET and
 * LIST against each target, with the proxy's CPU time per request (`proxies`:
 * the process behind each proxy URL): the figure that moves least when other
 * work shares the machine.
 */
async function cpuPerRequest(
  proxies: ReadonlyMap<string, number>,
  targets: readonly ProxyTarget[],
): Promise<BenchRow[]> {
  const out: BenchRow[] = [];
  const paths = [
    ['GET pod', `/api/v1/namespaces/${podNamespace(0)}/pods/${podName(0)}`],
    ['LIST configmaps', `/api/v1/namespaces/${BENCH_NAMESPACE}/configmaps`],
  ] as const;
  for (const [label, path] of paths) {
    if (values.paths !== undefined && !label.toLowerCase().startsWith(values.paths)) continue;
    for (const target of targets) {
      if (typeof target.base !== 'string') continue;
      const pid = proxies.get(target.base);
      const before = pid === undefined ? 0 : processCpuMs(pid);
      const threadsBefore = pid === undefined ? undefined : threadCpu(pid);
      const r = await runLoad({
        url: `${target.base}${path}`,
        headers: { 'User-Agent': target.userAgent },
        mode: 'throughput',
        concurrency: 16,
        durationMs: 3000,
      });
      let cpu = '';
      if (pid !== undefined) {
        const ms = processCpuMs(pid) - before;
        // --threads: the main thread's share, and V8's helpers (concurrent marking: GC pressure).
        const byThread =
          values.threads === true && threadsBefore !== undefined
            ? `; ${perThread(threadsBefore, threadCpu(pid), r.requests)}`
            : '';
        // Warm-up requests and the first check are not in r.requests: an upper bound.
        cpu = `; proxy ≤ ${((ms * 1000) / r.requests).toFixed(0)} µs CPU/request${byThread}`;
      }
      out.push({
        measurement: `${label}, ${target.name}`,
        measured: `${Math.round(r.reqPerSec)} req/s, p50 ${r.p50Ms.toFixed(2)} ms${cpu}`,
        target: '',
        verdict: '',
      });
    }
  }
  return out;
}

/** The namespaces the ingest pods and the marker ConfigMap live in. */
function seedNamespaces(api: FakeApiServer): void {
  const names = new Set([BENCH_NAMESPACE]);
  for (let i = 0; i < 20; i++) names.add(podNamespace(i));
  for (const name of names) {
    api.store.create('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  }
}

/** The benchmark cluster seeded into the double, and a hub in front of it, upstream up. */
async function clusterHub(): Promise<HubProcess> {
  seedCluster(api);
  const hub = await HubProcess.spawn({
    command: hubCommand(),
    servers: [api.url],
    dataDir: join(work, 'pods'),
    logFile: join(work, 'hub.log'),
    nodeName: nodeName(7),
  });
  await hub.waitReady();
  await hub.waitUpstream('up');
  return hub;
}

const work = await mkdtemp(join(tmpdir(), 'edgebox-hub-phase-'));
let api = new FakeApiServer({ historyLimit: 50_000 });
const rows: BenchRow[] = [];
const load = loadavg()[0] ?? NaN;
const steal = stealMeter();
try {
  await api.start();
  if (phase === 'ingest') {
    for (let run = 0; run < Number(values.runs); run++) {
      // A fresh double per run: the same pods are created again.
      if (run > 0) {
        await api.close();
        api = new FakeApiServer({ historyLimit: 50_000 });
        await api.start();
      }
      seedNamespaces(api);
      const hub = await HubProcess.spawn({
        command: hubCommand(),
        servers: [api.url],
        dataDir: join(work, `ingest-${run}`),
        logFile: join(work, 'hub.log'),
        nodeName: 'ingest-node',
        extraArgs: ['--health-interval', '5s', '--health-timeout', '5s'],
      });
      try {
        await hub.waitReady();
        await hub.waitUpstream('up');
        const threadsBefore = threadCpu(hub.pid);
        rows.push(...(await measureIngest(api, hub, Number(values.count))));
        if (values.threads === true) {
          rows.push({
            measurement: 'hub CPU by thread during the phase, µs per event',
            measured: perThread(threadsBefore, threadCpu(hub.pid), Number(values.count)),
            target: '',
            verdict: '',
          });
        }
      } finally {
        await hub.stop();
      }
    }
  } else if (phase === 'offline') {
    const hub = await clusterHub();
    try {
      await fillThroughHub(hub);
      rows.push(...(await measureOfflineLists(api, hub, false)));
    } finally {
      await hub.stop();
    }
  } else {
    const hub = await clusterHub();
    let relay: BareRelay | undefined;
    try {
      const through = { base: hub.url, expectSource: 'upstream', reference: undefined };
      const targets: ProxyTarget[] = [
        { name: 'direct', base: api.url, userAgent: KUBELET_UA, reference: 'reference' },
      ];
      if (values.only !== 'kubectl') {
        targets.push({ name: 'hub, kubelet (recorded)', userAgent: KUBELET_UA, ...through });
      }
      if (values.only !== 'kubelet') {
        targets.push({ name: 'hub, kubectl (not recorded)', userAgent: KUBECTL_UA, ...through });
      }
      // --bare: the bare Node relay as well (the proxy rows' floor, bare-relay-child.ts).
      relay = values.bare === true ? await BareRelay.start(api.url) : undefined;
      if (relay !== undefined) {
        targets.push({
          name: 'bare Node relay',
          base: relay.url,
          userAgent: KUBELET_UA,
          reference: 'floor',
        });
      }
      const rounds = Number(values.rounds);
      if (values.cpu === true) {
        const proxies = new Map([[hub.url, hub.pid]]);
        if (relay !== undefined) proxies.set(relay.url, relay.pid);
        rows.push(...(await cpuPerRequest(proxies, targets)));
      } else
        rows.push(
          ...(await measureProxyOverhead(targets, {
            rounds,
            latencyRequests: 500 * rounds,
            throughputMs: 1500 * rounds,
            concurrency: 16,
          })),
        );
    } finally {
      await relay?.stop();
      await hub.stop();
    }
  }
} finally {
  await api.close();
  await rm(work, { recursive: true, force: true });
}
process.stdout.write(`${renderTable(rows)}\n`);
process.stdout.write(
  `load average ${load.toFixed(2)} before, ${(loadavg()[0] ?? NaN).toFixed(2)} after; ${steal()}\n`,
);
