import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeApiServer } from '../test/apiserver/server.ts';
import { failedRow, progress, renderTable, type BenchRow } from './hub/bench-report.ts';
import { CLUSTER_PODS, KUBECTL_UA, KUBELET_UA, seedCluster } from './hub/bench-cluster.ts';
import { fillColdStore, measureColdStart, type ColdStartCommand } from './hub/cold-start.ts';
import { buildCompiledHub, sourceHubCommand } from './hub/compiled-hub.ts';
import { freePort, HubProcess } from './hub/hub-process.ts';
import { stealMeter } from './hub/cpu-steal.ts';
import { measureIngest } from './hub/ingest.ts';
import {
  DEPLOYED_FLAG_VARIANTS,
  DEPLOYED_VARIANTS,
  detectClientNode,
  measureBaselines,
  measureDeployedHub,
  buildUnitScript,
  measureHubMemory,
  readHubUnit,
} from './hub/memory.ts';
import { BareRelay } from './hub/bare-relay.ts';
import { buildUnitAt, measureBigListPeak, type UnitBuild } from './hub/big-list.ts';
import { findNginx, NginxProxy } from './hub/nginx-proxy.ts';
import { fillThroughHub, measureOfflineLists } from './hub/offline-lists.ts';
import { measureProxyOverhead, type ProxyTarget } from './hub/proxy-overhead.ts';
import { nodeName } from './hub/pod-fixture.ts';
import { measureSharedWatchers } from './hub/shared-watchers.ts';

/** What every phase shares. */
interface Bench {
  api: FakeApiServer;
  work: string;
  quick: boolean;
  /** `edgebox hub` from the TypeScript sources. */
  tsHub: string[];
  hubLog: string;
  /** A URL where nothing listens: the upstream of every offline hub. */
  deadUpstream: string;
  /** The store kubelet filled online with the 10,000 pods (phase 1). */
  podStore: string;
  /** `--memory-only`: fill the store, then the memory rows alone (no load on the other CPUs' work). */
  memoryOnly: boolean;
  /** `--shared-only`: the shared-watch rows alone (about a minute). */
  sharedOnly: boolean;
  /** `--big-list`: the peak while 10,000 pods are listed and recorded, alone. */
  bigListOnly: boolean;
  /** `--before=REF`: that commit's hub measured beside this one where a row compares them. */
  before: string | undefined;
  rows: BenchRow[];
  /** Stops whatever a failed phase left running. */
  stops: Array<() => Promise<void>>;
}

/** A hub from the sources on the pod store, upstream the double, recording as kubelet of node 7. */
async function spawnKubeletHub(b: Bench): Promise<HubProcess> {
  const hub = await HubProcess.spawn({
    command: b.tsHub,
    servers: [b.api.url],
    dataDir: b.podStore,
    logFile: b.hubLog,
    nodeName: nodeName(7),
  });
  b.stops.push(() => hub.stop());
  return hub;
}

/** Phase 1: proxy overhead online, then offline LISTs, on one hub that records as kubelet. */
async function proxyAndOfflineLists(b: Bench): Promise<boolean> {
  const hub = await spawnKubeletHub(b);
  await hub.waitReady();
  await hub.waitUpstream('up');
  const nginxBin = findNginx();
  let nginx: NginxProxy | undefined;
  let nginxMissing = 'nginx not installed';
  if (nginxBin !== undefined) {
    try {
      nginx = await NginxProxy.start(nginxBin, join(b.work, 'nginx'), b.api.url);
      b.stops.push(() => nginx?.stop() ?? Promise.resolve());
    } catch (err) {
      nginxMissing = `nginx did not start: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  const relay = await BareRelay.start(b.api.url);
  b.stops.push(() => relay.stop());
  const throughHub = { base: hub.url, expectSource: 'upstream', reference: undefined };
  const targets: ProxyTarget[] = [
    { name: 'direct to upstream', base: b.api.url, userAgent: KUBELET_UA, reference: 'reference' },
    { name: 'through EdgeHub, kubelet (recorded)', userAgent: KUBELET_UA, ...throughHub },
    { name: 'through EdgeHub, kubectl (not recorded)', userAgent: KUBECTL_UA, ...throughHub },
    {
      name: 'through nginx (plain reverse proxy)',
      base: nginx?.url ?? { missing: nginxMissing },
      userAgent: KUBELET_UA,
      reference: 'reference',
    },
    {
      name: 'through a bare Node relay (the floor)',
      base: relay.url,
      userAgent: KUBELET_UA,
      reference: 'floor: what relaying costs Node',
    },
  ];
  b.rows.push(
    ...(await measureProxyOverhead(targets, {
      rounds: b.quick ? 1 : 3,
      latencyRequests: b.quick ? 300 : 1500,
      throughputMs: b.quick ? 1000 : 4500,
      concurrency: 16,
    })),
  );
  await nginx?.stop();
  await relay.stop();

  let cached = false;
  try {
    progress(`caching ${CLUSTER_PODS.toLocaleString('en')} pods through the hub (online LISTs)`);
    await fillThroughHub(hub);
    cached = true;
    b.rows.push(...(await measureOfflineLists(b.api, hub, b.quick)));
  } catch (err) {
    b.rows.push(failedRow('offline LISTs: caching the pods online', '', err));
  }
  await hub.stop();
  return cached;
}

/** For --memory-only: kubelet's LISTs through a hub fill its store, nothing is timed. */
async function fillPodStore(b: Bench): Promise<boolean> {
  const hub = await spawnKubeletHub(b);
  try {
    await hub.waitReady();
    await hub.waitUpstream('up');
    progress(`caching ${CLUSTER_PODS.toLocaleString('en')} pods through the hub (online LISTs)`);
    await fillThroughHub(hub);
    return true;
  } catch (err) {
    b.rows.push(failedRow('memory: caching the pods online', '', err));
    return false;
  } finally {
    await hub.stop();
  }
}

/** Online, the double holding the 10,000 pods: peak RSS while they are listed and recorded. */
async function bigList(b: Bench): Promise<void> {
  const label = 'peak RSS while 10,000 pods are listed through the hub and recorded';
  const builds: UnitBuild[] = [];
  progress('building the unit script as npm run build does');
  const own = await buildUnitScript(readHubUnit(), join(b.work, 'big-list-install'));
  if (own instanceof Error) {
    b.rows.push(failedRow(label, '≤ 150 MB', own));
    return;
  }
  builds.push({ label: 'this checkout', command: own, target: true });
  if (b.before !== undefined) {
    progress(`building the unit script at ${b.before}`);
    const before = buildUnitAt(b.before, join(b.work, 'before'));
    if (before instanceof Error) b.rows.push(failedRow(`${label} (at ${b.before})`, '', before));
    else builds.unshift(before);
  }
  try {
    b.rows.push(...(await measureBigListPeak(b.api, b.work, builds)));
  } catch (err) {
    b.rows.push(failedRow(label, '≤ 150 MB', err));
  }
}

/** Phase 2: durable watch-event ingest, on a fresh hub with upstream back. */
async function ingest(b: Bench): Promise<void> {
  if (!b.api.listening) await b.api.restart();
  const hub = await HubProcess.spawn({
    command: b.tsHub,
    servers: [b.api.url],
    dataDir: join(b.work, 'ingest'),
    logFile: b.hubLog,
    nodeName: 'ingest-node',
    // The double replays the burst in one go; slow probes meanwhile are not an outage.
    extraArgs: ['--health-interval', '5s', '--health-timeout', '5s'],
  });
  b.stops.push(() => hub.stop());
  await hub.waitReady();
  await hub.waitUpstream('up');
  b.rows.push(...(await measureIngest(b.api, hub, b.quick ? 5000 : 20_000)));
  await hub.stop();
}

/** Phase 2b: one upstream watch per resource for the whole node, against its own small double. */
async function sharedWatchers(b: Bench): Promise<void> {
  try {
    b.rows.push(
      ...(await measureSharedWatchers(
        { command: b.tsHub, work: b.work, logFile: b.hubLog },
        b.quick,
      )),
    );
  } catch (err) {
    b.rows.push(failedRow('shared watches', '', err));
  }
}

/** Phase 3: where memory goes, and RSS of the hub from the sources and compiled. */
async function memory(
  b: Bench,
  commands: readonly ColdStartCommand[],
  podsCached: boolean,
): Promise<void> {
  b.rows.push(...(await measureBaselines(b.work)));
  b.rows.push(await detectClientNode(b.tsHub, join(b.work, 'imports'), b.deadUpstream, b.hubLog));
  // The API double is stopped by now: this kubeconfig names an offline server.
  await mkdir(join(b.work, 'imports'), { recursive: true });
  const kubeconfig = b.api.kubeconfigPath(join(b.work, 'imports'), { auth: 'token' });
  b.rows.push(
    await detectClientNode(b.tsHub, join(b.work, 'imports'), b.deadUpstream, b.hubLog, kubeconfig),
  );
  const run = async (label: string, command: readonly string[], objects: number) => {
    const dataDir =
      objects === 0 ? join(b.work, `empty-${label.replace(/\W+/g, '-')}`) : b.podStore;
    await mkdir(dataDir, { recursive: true });
    try {
      const common = {
        deadUpstream: b.deadUpstream,
        logFile: b.hubLog,
        nodeName: nodeName(7),
        quick: b.quick,
      };
      b.rows.push(...(await measureHubMemory({ label, command, dataDir, objects, ...common })));
    } catch (err) {
      b.rows.push(failedRow(`RSS: hub (${label})`, '', err));
    }
  };
  const first = commands[0];
  // The first open after the store was written replays LevelDB's log; measured apart.
  if (podsCached && first !== undefined) {
    await run(
      `${first.label}, first open after the store was written`,
      first.command,
      CLUSTER_PODS,
    );
  }
  for (const c of commands) {
    await run(c.label, c.command, 0);
    if (podsCached) await run(c.label, c.command, CLUSTER_PODS);
  }
  // V8 keeps up to 3 x 16 MB of young generation by default; a node agent can do with less.
  const compiled = commands[1];
  if (podsCached && compiled !== undefined) {
    const [program, ...rest] = compiled.command;
    if (program !== undefined) {
      await run(
        `${compiled.label}, --max-semi-space-size=2`,
        [program, '--max-semi-space-size=2', ...rest],
        CLUSTER_PODS,
      );
    }
    await deployed(b, compiled.command);
  }
}

/**
 * The hub as deploy/hub/edgebox-hub.service runs it (its script, as
 * `npm run build` writes it; its Environment= and node flags read from the
 * file; --upstream-kubeconfig): the row held to the target. With
 * --memory-only, also what each of the unit's settings is worth, and the tsc
 * build (`EDGEBOX_COMPILED=1 bin/edgebox.js`) with the same settings, which
 * is what the bundle saves.
 */
async function deployed(b: Bench, compiled: readonly string[]): Promise<void> {
  const label = "the unit's script, Environment= and node flags, --upstream-kubeconfig";
  try {
    const unit = readHubUnit();
    if (!unit.upstreamKubeconfig) throw new Error('the unit no longer runs --upstream-kubeconfig');
    const dir = join(b.work, 'deployed');
    await mkdir(dir, { recursive: true });
    progress(`building ${unit.script} as npm run build does`);
    const shippedCommand = await buildUnitScript(unit, join(dir, 'install'));
    if (shippedCommand instanceof Error) throw shippedCommand;
    // http + token, as the double serves plain HTTP here; it is stopped: offline.
    const kubeconfig = b.api.kubeconfigPath(dir, { auth: 'token' });
    const shipped = [
      unit.script,
      ...Object.entries(unit.environment).map(([k, v]) => `${k}=${v}`),
      ...unit.nodeFlags,
    ].join(' ');
    const unitRun = { change: {}, nodeFlags: unit.nodeFlags, command: shippedCommand };
    const variants = [
      { ...unitRun, label: shipped, target: true },
      ...(b.memoryOnly
        ? [
            ...DEPLOYED_VARIANTS.map((v) => ({ ...unitRun, ...v, target: false })),
            {
              ...unitRun,
              label: 'the tsc build instead of the bundle (EDGEBOX_COMPILED=1 bin/edgebox.js)',
              command: compiled,
              target: false,
            },
            ...DEPLOYED_FLAG_VARIANTS.map((v) => ({
              ...unitRun,
              label: v.label,
              nodeFlags: v.nodeFlags(unit.nodeFlags),
              target: false,
            })),
          ]
        : []),
    ];
    for (const [i, v] of variants.entries()) {
      try {
        b.rows.push(
          await measureDeployedHub({
            label: v.target ? `${label}: ${v.label}` : v.label,
            command: v.command,
            nodeFlags: v.nodeFlags,
            environment: { ...unit.environment, ...v.change },
            kubeconfig,
            dataDir: b.podStore,
            logFile: join(dir, `hub-${i}.log`),
            nodeName: nodeName(7),
            objects: CLUSTER_PODS,
            target: v.target,
          }),
        );
      } catch (err) {
        b.rows.push(failedRow(`RSS: hub as deployed (${v.label})`, v.target ? '≤ 80 MB' : '', err));
      }
    }
  } catch (err) {
    b.rows.push(failedRow(`RSS: hub as deployed (${label})`, '≤ 80 MB', err));
  }
}

/** Phase 4: cold start on a store of 100,000 objects. */
async function coldStart(b: Bench, commands: readonly ColdStartCommand[]): Promise<void> {
  progress('writing 100,000 pods into a store for the cold start (about a minute)');
  const dir = join(b.work, 'cold');
  try {
    await fillColdStore(dir);
    b.rows.push(...(await measureColdStart(commands, dir, b.work, b.deadUpstream, b.quick)));
  } catch (err) {
    b.rows.push(failedRow('cold start, 100,000 objects cached', '≤ 1000 ms', err));
  }
}

/** Every phase but the big LIST's: proxy overhead, offline LISTs, ingest, shared watchers, memory, cold start. */
async function everyOtherPhase(b: Bench): Promise<void> {
  let podsCached: boolean;
  if (b.memoryOnly) {
    podsCached = await fillPodStore(b);
  } else {
    podsCached = await proxyAndOfflineLists(b);
    await ingest(b);
    await sharedWatchers(b);
  }
  await b.api.stop();

  progress('compiling the hub to JavaScript (tsc)');
  const compiled = await buildCompiledHub(join(b.work, 'compiled'));
  const commands: ColdStartCommand[] = [{ label: 'TS sources', command: b.tsHub }];
  if (compiled instanceof Error) {
    b.rows.push({ ...failedRow('compiled JavaScript build', '', compiled), verdict: '' });
  } else {
    commands.push({ label: 'compiled JS', command: compiled });
  }
  await memory(b, commands, podsCached);
  if (!b.memoryOnly) await coldStart(b, commands);
}

/**
 * `npm run bench -- hub [--quick]`: EdgeHub's speed and memory next to the
 * targets of issue 3, on loopback, with the kube-apiserver double as upstream.
 * Every server and the load generator run in their own processes: the double
 * in this one, `edgebox hub` and nginx as children, the load from
 * hub/load-client.ts. `--quick` shortens every run (a smoke check, not figures);
 * `--memory-only` fills the store and measures memory alone (about a minute);
 * `--shared-only` measures the shared watches alone;
 * `--big-list` measures only the peak while 10,000 pods are listed and recorded;
 * `--before=REF` measures commit REF's hub beside this one in that row.
 */
export async function runBenchmark(args: string[]): Promise<void> {
  const started = performance.now();
  const loadBefore = loadavg()[0] ?? NaN;
  const steal = stealMeter();
  const work = await mkdtemp(join(tmpdir(), 'edgebox-hub-bench-'));
  const b: Bench = {
    // History long enough to replay the ingest burst to a watch (hub/ingest.ts).
    api: new FakeApiServer({ historyLimit: 50_000 }),
    work,
    quick: args.includes('--quick'),
    tsHub: sourceHubCommand(),
    hubLog: join(work, 'hub.log'),
    deadUpstream: `http://127.0.0.1:${await freePort()}`,
    podStore: join(work, 'pods'),
    memoryOnly: args.includes('--memory-only'),
    sharedOnly: args.includes('--shared-only'),
    bigListOnly: args.includes('--big-list'),
    before: args.find((a) => a.startsWith('--before='))?.slice('--before='.length),
    rows: [],
    stops: [],
  };
  try {
    if (b.sharedOnly) {
      await sharedWatchers(b);
    } else {
      await b.api.start();
      progress(`seeding ${CLUSTER_PODS.toLocaleString('en')} pods into the API double`);
      seedCluster(b.api);
      await bigList(b);
      if (!b.bigListOnly) await everyOtherPhase(b);
    }
  } catch (err) {
    b.rows.push(failedRow('hub benchmark', '', err));
  } finally {
    for (const stop of b.stops.reverse()) await stop().catch(() => undefined);
    await b.api.close();
    await rm(work, { recursive: true, force: true });
  }
  process.stdout.write(`${renderTable(b.rows)}\n`);
  // Every figure is CPU-bound on loopback: say how busy the machine was.
  process.stdout.write(
    `EdgeHub benchmark: ${((performance.now() - started) / 1000).toFixed(0)} s on ${cpus().length} CPUs, ` +
      `Node ${process.version}; load average ${loadBefore.toFixed(1)} before, ${(loadavg()[0] ?? NaN).toFixed(1)} after, ` +
      `${steal()} (other work on the machine or host skews every figure); servers and load generator in separate processes.\n`,
  );
}
