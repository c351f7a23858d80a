import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { FakeApiServer } from '../../test/apiserver/server.ts';
import { failedRow, progress, verdict, type BenchRow } from './bench-report.ts';
import { BENCH_NAMESPACE, KUBELET } from './bench-cluster.ts';
import { metricValue, plainGet, type HubProcess } from './hub-process.ts';
import { benchPod, podNamespace } from './pod-fixture.ts';

const TARGET_PER_SECOND = 5000;
const INGEST_NODE = 'ingest-node';
const SELECTOR = encodeURIComponent(`spec.nodeName=${INGEST_NODE}`);
const CACHED = 'edgebox_hub_cached_objects';
const KUBELET_PODS = 'component="kubelet",resource="pods"';
const COMMITS = 'edgebox_hub_store_write_duration_seconds_count';
const COMMIT_SECONDS = 'edgebox_hub_store_write_duration_seconds_sum';
const BATCH_OPS = 'edgebox_hub_store_batch_operations_sum';

/**
 * CPU time (user + system, all threads) a process has used so far, in ms,
 * from /proc (Linux; NaN elsewhere). The ingest rate on a shared machine is
 * CPU-bound: this says where the CPU went, which moves less with the noise.
 */
export function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after its ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return NaN;
  }
}
/** USER_HZ: /proc/<pid>/stat counts CPU time in these. */
const CLOCK_TICKS_PER_SECOND = 100;

/** A kubelet watch through the hub that counts events (lines) as they arrive. */
function countingWatch(url: string): {
  events: () => number;
  close: () => void;
  opened: Promise<void>;
} {
  let events = 0;
  const req = request(url, { agent: false, headers: { Accept: 'application/json', ...KUBELET } });
  const opened = new Promise<void>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      if (res.statusCode !== 200) reject(new Error(`watch answered ${res.statusCode}`));
      res.on('data', (chunk: Buffer) => {
        // indexOf is native: a JS loop over 92 MB of bytes took the CPU the hub shares
        // for about 15 µs an event, several percent of the hub's own work.
        for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, nl + 1)) events += 1;
      });
      res.on('error', () => undefined);
      resolve();
    });
  });
  req.end();
  return { events: () => events, close: () => req.destroy(), opened };
}

async function pollMetrics(
  hub: HubProcess,
  until: (text: string) => boolean,
  what: string,
): Promise<string> {
  const deadline = performance.now() + 120_000;
  for (;;) {
    const text = await hub.metrics();
    if (until(text)) return text;
    if (performance.now() > deadline) throw new Error(`${what} did not happen within 120 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Durable watch-event ingest: kubelet lists the pods of one node through the
 * hub; `count` pods are then created on that node upstream, and kubelet's
 * watch from the list's resourceVersion makes the double replay them as one
 * burst, as after a reconnect (the double cannot create pods faster than a
 * few thousand a second, so a live stream would measure the double). The
 * clock runs from the watch request until the hub's store has committed them
 * all: the store commits in order and updates the cached-object gauge before
 * its synced write returns, so "all committed" is: the gauge shows every pod,
 * then one more recorded write (a GET) is queued behind them and the commit
 * counter moves past the value it had when the gauge was complete.
 */
export async function measureIngest(
  api: FakeApiServer,
  hub: HubProcess,
  count: number,
): Promise<BenchRow[]> {
  const measurement = `durable watch-event ingest (${count.toLocaleString('en')} ADDED pods of 4.6 KB, replayed)`;
  const target = `≥ ${TARGET_PER_SECOND.toLocaleString('en')} events/s`;
  progress(measurement);
  let watch: ReturnType<typeof countingWatch> | undefined;
  try {
    const list = await plainGet(`${hub.url}/api/v1/pods?fieldSelector=${SELECTOR}`, KUBELET);
    if (list.status !== 200) throw new Error(`LIST through the hub answered ${list.status}`);
    const rv = (JSON.parse(list.body) as { metadata: { resourceVersion: string } }).metadata
      .resourceVersion;
    for (let i = 0; i < count; i++) {
      api.store.create('pods', benchPod(1_000_000 + i, INGEST_NODE, podNamespace(i)));
      // Keep the double answering the hub's health probes meanwhile.
      if (i % 500 === 499) await yieldToLoop();
    }
    const before = await hub.metrics();
    const cachedBefore = metricValue(before, CACHED, KUBELET_PODS);

    const started = performance.now();
    const hubCpuBefore = processCpuMs(hub.pid);
    const ownCpuBefore = process.cpuUsage();
    watch = countingWatch(
      `${hub.url}/api/v1/pods?watch=1&resourceVersion=${rv}&fieldSelector=${SELECTOR}`,
    );
    await watch.opened;
    const complete = await pollMetrics(
      hub,
      (t) => metricValue(t, CACHED, KUBELET_PODS) >= cachedBefore + count,
      `the hub caching all ${count} pods`,
    );
    const commitsWhenComplete = metricValue(complete, COMMITS);
    api.store.create('configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'ingest-marker', namespace: BENCH_NAMESPACE },
    });
    const marker = await plainGet(
      `${hub.url}/api/v1/namespaces/${BENCH_NAMESPACE}/configmaps/ingest-marker`,
      KUBELET,
    );
    if (marker.status !== 200) throw new Error(`marker GET answered ${marker.status}`);
    const after = await pollMetrics(
      hub,
      (t) => metricValue(t, COMMITS) > commitsWhenComplete,
      'the commit after the last event',
    );
    const seconds = (performance.now() - started) / 1000;
    const hubCpu = processCpuMs(hub.pid) - hubCpuBefore;
    const ownCpu = process.cpuUsage(ownCpuBefore);
    if (watch.events() < count) {
      throw new Error(`the client watch got ${watch.events()} of ${count} events`);
    }
    const commits = metricValue(after, COMMITS) - metricValue(before, COMMITS);
    const ops = metricValue(after, BATCH_OPS) - metricValue(before, BATCH_OPS);
    const commitMs =
      ((metricValue(after, COMMIT_SECONDS) - metricValue(before, COMMIT_SECONDS)) * 1000) / commits;
    const rate = count / seconds;
    return [
      {
        measurement,
        measured:
          `${Math.round(rate).toLocaleString('en')} events/s ` +
          `(${commits} synced commits, ${Math.round(ops / commits)} ops and ${commitMs.toFixed(1)} ms each; ` +
          `CPU: hub ${Math.round((hubCpu * 1000) / count)} µs/event, ` +
          `API double + client ${Math.round((ownCpu.user + ownCpu.system) / count)} µs/event)`,
        target,
        verdict: verdict(rate >= TARGET_PER_SECOND),
      },
    ];
  } catch (err) {
    return [failedRow(measurement, target, err)];
  } finally {
    watch?.close();
  }
}
