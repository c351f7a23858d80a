import type { FakeApiServer } from '../../test/apiserver/server.ts';
import { failedRow, progress, verdict, type BenchRow } from './bench-report.ts';
import { CLUSTER_PODS, KUBELET } from './bench-cluster.ts';
import { metricValue, plainGet, type HubProcess } from './hub-process.ts';
import { formatMs } from './latency-stats.ts';
import { runLoad } from './load-run.ts';
import { nodeName, NODE_COUNT } from './pod-fixture.ts';

const SELECTED_NODE = nodeName(7);
export const NODE_LIST_PATH = `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${SELECTED_NODE}`)}`;
const ALL_PODS_PATH = '/api/v1/pods';

const SELECTOR_TARGET_MS = 12;
const ALL_TARGET_MS = 300;

/**
 * Fills the hub's cache as kubelet would (its node's pods) plus an unfiltered
 * list of every pod, online, and waits until the store holds them all.
 */
export async function fillThroughHub(hub: HubProcess): Promise<void> {
  for (const path of [ALL_PODS_PATH, NODE_LIST_PATH]) {
    const answer = await plainGet(`${hub.url}${path}`, KUBELET);
    if (answer.status !== 200 || answer.source !== 'upstream') {
      throw new Error(
        `online LIST ${path} through the hub answered ${answer.status} from ${answer.source ?? '?'}`,
      );
    }
  }
  const deadline = performance.now() + 60_000;
  for (;;) {
    const cached = metricValue(
      await hub.metrics(),
      'edgebox_hub_cached_objects',
      'component="kubelet",resource="pods"',
    );
    if (cached === CLUSTER_PODS) return;
    if (performance.now() > deadline) {
      throw new Error(`the hub cached ${cached} of ${CLUSTER_PODS} pods within 60 s`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Offline LISTs of the pods a hub cached online (fillThroughHub), upstream
 * stopped: kubelet's own node (100 of 10,000, by field selector) and all.
 */
export async function measureOfflineLists(
  api: FakeApiServer,
  hub: HubProcess,
  quick: boolean,
): Promise<BenchRow[]> {
  const perNode = CLUSTER_PODS / NODE_COUNT;
  const selectorRow = `offline LIST, fieldSelector spec.nodeName (${perNode} of ${CLUSTER_PODS.toLocaleString('en')} pods)`;
  const allRow = `offline LIST, all ${CLUSTER_PODS.toLocaleString('en')} pods (46 MB)`;
  const selectorTarget = `≤ ${SELECTOR_TARGET_MS} ms p50 (apiserver ~11)`;
  const allTarget = `≤ ${ALL_TARGET_MS} ms p50 (apiserver ~800)`;
  try {
    await api.stop();
    await hub.waitUpstream('down');
  } catch (err) {
    return [failedRow(selectorRow, selectorTarget, err), failedRow(allRow, allTarget, err)];
  }
  const rows: BenchRow[] = [];
  progress(selectorRow);
  try {
    const r = await runLoad({
      url: `${hub.url}${NODE_LIST_PATH}`,
      headers: KUBELET,
      mode: 'latency',
      warmup: 20,
      requests: quick ? 100 : 300,
      expectSource: 'cache',
      expectItems: perNode,
    });
    if (r.errors > 0) throw new Error(`${r.errors} failed (first: ${r.firstError ?? '?'})`);
    rows.push({
      measurement: selectorRow,
      measured: `p50 ${formatMs(r.p50Ms)}, p99 ${formatMs(r.p99Ms)} (${(r.bytesPerResponse / 1024).toFixed(0)} KB)`,
      target: selectorTarget,
      verdict: verdict(r.p50Ms <= SELECTOR_TARGET_MS),
    });
  } catch (err) {
    rows.push(failedRow(selectorRow, selectorTarget, err));
  }
  progress(allRow);
  try {
    const r = await runLoad({
      url: `${hub.url}${ALL_PODS_PATH}`,
      headers: KUBELET,
      mode: 'latency',
      warmup: 2,
      requests: quick ? 5 : 15,
      expectSource: 'cache',
      expectItems: CLUSTER_PODS,
    });
    if (r.errors > 0) throw new Error(`${r.errors} failed (first: ${r.firstError ?? '?'})`);
    rows.push({
      measurement: allRow,
      measured: `p50 ${formatMs(r.p50Ms)}, p99 ${formatMs(r.p99Ms)} (${(r.bytesPerResponse / 1e6).toFixed(1)} MB)`,
      target: allTarget,
      verdict: verdict(r.p50Ms <= ALL_TARGET_MS),
    });
  } catch (err) {
    rows.push(failedRow(allRow, allTarget, err));
  }
  return rows;
}
