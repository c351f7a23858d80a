import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import Table from 'cli-table3';
import { z } from 'zod';
import { PodSchema, formatTime, type Node } from '../controllers/kube/objects.ts';
import { MemoryCluster } from '../controllers/testing/memory-cluster.ts';
import { nodeProblemTolerations } from '../controllers/testing/cluster-objects.ts';

/**
 * `npm run bench -- ecm [--nodes=5000] [--pods-per-node=30] [--zones=5]`:
 * the ECM's controllers over an in-memory cluster of 5,000 nodes and 150,000
 * pods on a simulated clock: time of one full monitor pass, resident memory,
 * and a mass outage (one zone, then every zone) checking that NoExecute
 * tainting (upstream's "evictions") never goes faster than the configured
 * rate. Runs in a child process so memory is the ECM's alone.
 */

const CHILD_FLAG = '--ecm-bench-child';
const ECM_NODE_OPTIONS = ['--max-semi-space-size=16', '--max-old-space-size=320'];
const MINUTE = 60_000;
const MB = 1024 * 1024;

const ResultSchema = z.object({
  nodes: z.number(),
  pods: z.number(),
  zones: z.number(),
  loadSeconds: z.number(),
  rssAfterLoadMb: z.number(),
  heapAfterLoadMb: z.number(),
  steadyPassMs: z.object({ median: z.number(), max: z.number() }),
  outagePassMaxMs: z.number(),
  rate: z.number(),
  oneZone: z.object({
    minutes: z.number(),
    zoneState: z.string(),
    tainted: z.number(),
    minGapSeconds: z.number(),
    maxPerMinute: z.number(),
    podsEvicted: z.number(),
    otherZonesTainted: z.number(),
  }),
  allZones: z.object({
    minutes: z.number(),
    taintsAfterDetection: z.number(),
    noExecuteLeft: z.number(),
    evictionsAfterDetection: z.number(),
    detectedAfterSeconds: z.number(),
  }),
  rssEndMb: z.number(),
  rssPeakMb: z.number(),
});
type Result = z.infer<typeof ResultSchema>;

function flag(args: string[], name: string, fallback: number): number {
  const hit = args.find((a) => a.startsWith(`--${name}=`));
  if (hit === undefined) return fallback;
  const n = Number(hit.slice(name.length + 3));
  if (!Number.isInteger(n) || n <= 0)
    throw new Error(`--${name} must be a positive integer, got ${hit}`);
  return n;
}

function forceGc(): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
}

/** A pod as the apiserver returns it, with the bulk a real one carries (cut down by PodSchema). */
function rawPod(name: string, nodeName: string, at: string): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: `team-${name.length % 7}`,
      uid: `0b1d${name}`,
      resourceVersion: '1',
      creationTimestamp: at,
      labels: { app: 'sensor-reader', 'pod-template-hash': '5d8f9c7b6d', tier: 'edge' },
      annotations: {
        'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(600),
        'prometheus.io/scrape': 'true',
      },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: 'sensor-reader-5d8f9c7b6d',
          uid: 'rs-uid',
          controller: true,
        },
      ],
    },
    spec: {
      nodeName,
      containers: [
        {
          name: 'reader',
          image: 'registry.example/sensor-reader:1.4.2',
          env: [
            { name: 'LINE', value: 'assembly-3' },
            { name: 'MQTT_URL', value: 'mqtt://broker.factory.local:1883' },
          ],
          resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '128Mi' } },
          volumeMounts: [
            { name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
          ],
        },
      ],
      tolerations: nodeProblemTolerations(300),
      serviceAccountName: 'default',
      terminationGracePeriodSeconds: 30,
    },
    status: {
      phase: 'Running',
      podIP: '10.42.3.17',
      hostIP: '192.168.10.21',
      startTime: at,
      conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({
        type,
        status: 'True',
        lastTransitionTime: at,
      })),
      containerStatuses: [
        {
          name: 'reader',
          ready: true,
          restartCount: 0,
          image: 'registry.example/sensor-reader:1.4.2',
          imageID: 'registry.example/sensor-reader@sha256:' + 'ab'.repeat(32),
          containerID: 'containerd://' + 'cd'.repeat(32),
          state: { running: { startedAt: at } },
        },
      ],
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

async function measure(args: string[]): Promise<Result> {
  const nodeCount = flag(args, 'nodes', 5000);
  const podsPerNode = flag(args, 'pods-per-node', 30);
  const zoneCount = flag(args, 'zones', 5);
  const cluster = new MemoryCluster({ keepRecords: false });
  const rate = cluster.config.nodeEvictionRate;
  const zoneOf = (i: number) => `z${i % zoneCount}`;

  const loadStart = performance.now();
  const at = formatTime(cluster.clock.now());
  for (let i = 0; i < nodeCount; i++) {
    const name = `node-${i}`;
    cluster.addNode(name, { zone: zoneOf(i), region: 'plant' });
    for (let p = 0; p < podsPerNode; p++) {
      // Through the same cut the informers apply.
      const pod = PodSchema.parse(JSON.parse(JSON.stringify(rawPod(`${name}-p${p}`, name, at))));
      pod.metadata.resourceVersion = cluster.writer.nextVersion();
      cluster.cache.upsertPod(pod);
    }
  }
  const loadSeconds = (performance.now() - loadStart) / 1000;
  forceGc();
  const afterLoad = process.memoryUsage();

  // Observe what the controllers do, on the simulated clock.
  const taints: { node: string; zone: string; at: number }[] = [];
  const evictions: number[] = [];
  const hasNoExecute = (n: Node | undefined) =>
    n?.spec.taints?.some((t) => t.effect === 'NoExecute') ?? false;
  cluster.cache.addListener({
    nodeChanged: (old, next) => {
      if (next !== undefined && hasNoExecute(next) && !hasNoExecute(old)) {
        taints.push({
          node: next.metadata.name,
          zone: next.metadata.labels?.['topology.kubernetes.io/zone'] ?? '',
          at: cluster.clock.now(),
        });
      }
    },
    podChanged: (old, next) => {
      if (
        next?.metadata.deletionTimestamp !== undefined &&
        old?.metadata.deletionTimestamp === undefined
      ) {
        evictions.push(cluster.clock.now());
      }
    },
  });
  const lifecycle = cluster.core.lifecycle;
  if (lifecycle === undefined) throw new Error('the benchmark needs standalone mode');
  const passTimes: number[] = [];
  const monitor = lifecycle.monitorNodeHealth.bind(lifecycle);
  lifecycle.monitorNodeHealth = async () => {
    const t0 = performance.now();
    await monitor();
    passTimes.push(performance.now() - t0);
  };

  cluster.start();
  await cluster.advance(MINUTE);
  passTimes.length = 0;
  await cluster.advance(MINUTE);
  const steady = [...passTimes];

  // One zone loses its link.
  const outageStart = cluster.clock.now();
  const oneZoneMinutes = 10;
  for (let i = 0; i < nodeCount; i++) if (zoneOf(i) === 'z0') cluster.partition(`node-${i}`);
  passTimes.length = 0;
  await cluster.advance(oneZoneMinutes * MINUTE);
  const outagePasses = [...passTimes];
  const z0 = taints.filter((t) => t.zone === 'z0' && t.at >= outageStart).map((t) => t.at);
  const gapsSeconds = z0.slice(1).map((t, i) => (t - (z0[i] as number)) / 1000);
  let maxPerMinute = 0;
  for (const start of z0)
    maxPerMinute = Math.max(
      maxPerMinute,
      z0.filter((t) => t >= start && t < start + MINUTE).length,
    );
  const zoneState = lifecycle.zoneStateSnapshot().get('plant/z0') ?? '?';
  const podsEvicted = evictions.filter((t) => t >= outageStart).length;
  const otherZonesTainted = taints.filter((t) => t.zone !== 'z0' && t.at >= outageStart).length;

  // Then every zone: upstream's "master disruption" mode.
  const allDownStart = cluster.clock.now();
  for (let i = 0; i < nodeCount; i++) cluster.partition(`node-${i}`);
  const detectedAt = await cluster.advanceUntil(
    () => lifecycle.zoneRateSnapshot().get('plant/z1') === 0,
    5 * MINUTE,
  );
  const allZonesMinutes = 10;
  await cluster.advance(allZonesMinutes * MINUTE);
  const noExecuteLeft = cluster.cache.nodes().filter((n) => hasNoExecute(n)).length;
  forceGc();
  const end = process.memoryUsage();
  cluster.stop();
  if (cluster.backgroundErrors.length > 0) {
    throw new Error(`controller errors during the run: ${String(cluster.backgroundErrors[0])}`);
  }
  return {
    nodes: nodeCount,
    pods: nodeCount * podsPerNode,
    zones: zoneCount,
    loadSeconds,
    rssAfterLoadMb: afterLoad.rss / MB,
    heapAfterLoadMb: afterLoad.heapUsed / MB,
    steadyPassMs: { median: median(steady), max: Math.max(...steady) },
    outagePassMaxMs: Math.max(...outagePasses),
    rate,
    oneZone: {
      minutes: oneZoneMinutes,
      zoneState,
      tainted: z0.length,
      minGapSeconds: gapsSeconds.length === 0 ? Number.NaN : Math.min(...gapsSeconds),
      maxPerMinute,
      podsEvicted,
      otherZonesTainted,
    },
    allZones: {
      minutes: allZonesMinutes,
      taintsAfterDetection: taints.filter((t) => t.at > detectedAt).length,
      noExecuteLeft,
      evictionsAfterDetection: evictions.filter((t) => t > detectedAt).length,
      detectedAfterSeconds: (detectedAt - allDownStart) / 1000,
    },
    rssEndMb: end.rss / MB,
    // maxRSS is in kilobytes.
    rssPeakMb: process.resourceUsage().maxRSS / 1024,
  };
}

function verdict(ok: boolean): string {
  return ok ? 'ok' : 'MISSED';
}

function printTable(r: Result): void {
  const ratePerMinute = r.rate * 60;
  const table = new Table({ head: ['measure', 'value', 'target', ''] });
  table.push(
    ['cluster', `${r.nodes} nodes, ${r.pods} pods, ${r.zones} zones`, '', ''],
    ['load (parse + index)', `${r.loadSeconds.toFixed(1)} s`, '', ''],
    [
      'resident memory after load',
      `${r.rssAfterLoadMb.toFixed(0)} MB (heap ${r.heapAfterLoadMb.toFixed(0)} MB)`,
      '≤ 400 MB',
      verdict(r.rssAfterLoadMb <= 400),
    ],
    [
      'monitor pass, steady (median / max)',
      `${r.steadyPassMs.median.toFixed(1)} / ${r.steadyPassMs.max.toFixed(1)} ms`,
      '≤ 200 ms',
      verdict(r.steadyPassMs.max <= 200),
    ],
    [
      'monitor pass, slowest during outage',
      `${r.outagePassMaxMs.toFixed(1)} ms`,
      '(writes 1 zone: conditions, pods NotReady)',
      '',
    ],
    [
      `one zone down ${r.oneZone.minutes} min: zone state`,
      r.oneZone.zoneState,
      'FullDisruption (others Normal)',
      verdict(r.oneZone.zoneState === 'FullDisruption'),
    ],
    [
      '  nodes tainted NoExecute (evictions)',
      String(r.oneZone.tainted),
      `≤ ${Math.floor(r.oneZone.minutes * ratePerMinute) + 1}`,
      verdict(r.oneZone.tainted <= Math.floor(r.oneZone.minutes * ratePerMinute) + 1),
    ],
    [
      '  shortest gap between two',
      `${r.oneZone.minGapSeconds.toFixed(1)} s`,
      `≥ ${(1 / r.rate).toFixed(0)} s (rate ${r.rate}/s)`,
      verdict(r.oneZone.minGapSeconds >= 1 / r.rate),
    ],
    [
      '  most in any minute',
      String(r.oneZone.maxPerMinute),
      `≤ ${Math.ceil(ratePerMinute)}`,
      verdict(r.oneZone.maxPerMinute <= Math.ceil(ratePerMinute)),
    ],
    ['  pods deleted (300 s after their node)', String(r.oneZone.podsEvicted), '', ''],
    [
      '  nodes tainted in healthy zones',
      String(r.oneZone.otherZonesTainted),
      '0',
      verdict(r.oneZone.otherZonesTainted === 0),
    ],
    [
      `all zones down ${r.allZones.minutes} min: detected after`,
      `${r.allZones.detectedAfterSeconds.toFixed(0)} s`,
      '',
      '',
    ],
    [
      '  NoExecute taints added after detection',
      String(r.allZones.taintsAfterDetection),
      '0',
      verdict(r.allZones.taintsAfterDetection === 0),
    ],
    [
      '  NoExecute taints left on nodes',
      String(r.allZones.noExecuteLeft),
      '0',
      verdict(r.allZones.noExecuteLeft === 0),
    ],
    [
      '  pods deleted after detection',
      String(r.allZones.evictionsAfterDetection),
      '0',
      verdict(r.allZones.evictionsAfterDetection === 0),
    ],
    [
      'resident memory at the end',
      `${r.rssEndMb.toFixed(0)} MB`,
      '≤ 400 MB',
      verdict(r.rssEndMb <= 400),
    ],
    [
      'resident memory, peak of the whole run',
      `${r.rssPeakMb.toFixed(0)} MB`,
      '≤ 400 MB',
      verdict(r.rssPeakMb <= 400),
    ],
  );
  process.stdout.write(`${table.toString()}\n`);
}

export async function runBenchmark(args: string[]): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), [CHILD_FLAG, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // As deploy/ecm runs it (NODE_OPTIONS): a small young generation and a capped
    // old one keep resident memory near the live heap through mass updates.
    execArgv: [...process.execArgv, ...ECM_NODE_OPTIONS],
  });
  const result = await new Promise<Result>((resolve, reject) => {
    child.once('message', (m: unknown) => {
      const parsed = ResultSchema.safeParse(m);
      if (parsed.success) resolve(parsed.data);
      else
        reject(new Error(`ecm benchmark child sent an unexpected result: ${parsed.error.message}`));
    });
    child.once('exit', (code) =>
      reject(new Error(`ecm benchmark child exited with code ${String(code)}`)),
    );
    child.once('error', reject);
  });
  printTable(result);
}

if (process.argv.includes(CHILD_FLAG)) {
  measure(process.argv.slice(2)).then(
    (result) => process.send?.(result, () => process.exit(0)),
    (err: unknown) => {
      process.stderr.write(
        `ecm benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}
