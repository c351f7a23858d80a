import { progress, verdict, type BenchRow } from './bench-report.ts';
import { BENCH_CONFIGMAPS, BENCH_NAMESPACE } from './bench-cluster.ts';
import { formatMs } from './latency-stats.ts';
import { runLoad } from './load-run.ts';
import type { LoadResult } from './load-spec.ts';
import { podName, podNamespace } from './pod-fixture.ts';

/**
 * EdgeHub may add this much to the p50 of a GET and of a 46 KB LIST. No
 * throughput target: node components send a few reads a second; req/s is
 * printed for comparison with nginx.
 */
const MAX_ADDED_P50_MS = 1;

export interface ProxyTarget {
  name: string;
  /** Base URL, or why this target could not be measured ("nginx not installed"). */
  base: string | { missing: string };
  userAgent: string;
  /** X-Edgebox-Source every answer must carry (through the hub). */
  expectSource?: string;
  /** Reference rows (direct, nginx) are not held to the targets. */
  reference: string | undefined;
}

export interface ProxyLoad {
  /** Rounds over all targets in turn, so a noisy moment hits every target alike. */
  rounds: number;
  latencyRequests: number;
  throughputMs: number;
  concurrency: number;
}

interface Measured {
  p50Ms: number;
  p99Ms: number;
  reqPerSec: number;
}

const REQUESTS = [
  {
    label: `GET pod (4.6 KB)`,
    path: `/api/v1/namespaces/${podNamespace(0)}/pods/${podName(0)}`,
    expectItems: undefined,
  },
  {
    label: `LIST ${BENCH_CONFIGMAPS} ConfigMaps (46 KB)`,
    path: `/api/v1/namespaces/${BENCH_NAMESPACE}/configmaps`,
    expectItems: BENCH_CONFIGMAPS,
  },
] as const;

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
}

/** One round against one target: a latency run, then a throughput run. */
async function round(
  target: ProxyTarget,
  base: string,
  path: string,
  expectItems: number | undefined,
  load: ProxyLoad,
): Promise<[LoadResult, LoadResult]> {
  const common = {
    url: `${base}${path}`,
    headers: { 'User-Agent': target.userAgent },
    ...(target.expectSource === undefined ? {} : { expectSource: target.expectSource }),
    ...(expectItems === undefined ? {} : { expectItems }),
  };
  const latency = await runLoad({
    ...common,
    mode: 'latency',
    warmup: 100,
    requests: Math.ceil(load.latencyRequests / load.rounds),
  });
  const throughput = await runLoad({
    ...common,
    mode: 'throughput',
    concurrency: load.concurrency,
    durationMs: Math.ceil(load.throughputMs / load.rounds),
  });
  for (const r of [latency, throughput]) {
    if (r.errors > 0)
      throw new Error(`${r.errors} failed requests (first: ${r.firstError ?? '?'})`);
  }
  return [latency, throughput];
}

function signed(ms: number): string {
  return `${ms >= 0 ? '+' : '-'}${formatMs(Math.abs(ms))}`;
}

function figures(m: Measured, direct: Measured | undefined): string {
  const added = direct === undefined ? '' : ` (${signed(m.p50Ms - direct.p50Ms)})`;
  const share =
    direct === undefined ? '' : ` (${((100 * m.reqPerSec) / direct.reqPerSec).toFixed(0)}%)`;
  return (
    `p50 ${formatMs(m.p50Ms)}${added}, p99 ${formatMs(m.p99Ms)}; ` +
    `${Math.round(m.reqPerSec).toLocaleString('en')} req/s${share}`
  );
}

/**
 * Latency (one request at a time) and throughput (`concurrency` keep-alive
 * connections) of the same GET and LIST, direct to upstream and through each
 * proxy, in interleaved rounds; p50/p99 are the medians of the rounds' and
 * req/s their mean. The load generator is its own process; so are the hub
 * and nginx. The first target is the direct one every other is compared to.
 */
export async function measureProxyOverhead(
  targets: readonly ProxyTarget[],
  load: ProxyLoad,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const request of REQUESTS) {
    const results = new Map<ProxyTarget, Array<[LoadResult, LoadResult]>>();
    const failures = new Map<ProxyTarget, string>();
    for (let r = 0; r < load.rounds; r++) {
      progress(`${request.label}: round ${r + 1} of ${load.rounds}`);
      for (const target of targets) {
        if (typeof target.base !== 'string' || failures.has(target)) continue;
        try {
          const measured = await round(
            target,
            target.base,
            request.path,
            request.expectItems,
            load,
          );
          results.set(target, [...(results.get(target) ?? []), measured]);
        } catch (err) {
          failures.set(target, err instanceof Error ? err.message : String(err));
        }
      }
    }
    const summary = (t: ProxyTarget): Measured | undefined => {
      const runs = results.get(t);
      if (runs === undefined || failures.has(t)) return undefined;
      return {
        p50Ms: median(runs.map(([l]) => l.p50Ms)),
        p99Ms: median(runs.map(([l]) => l.p99Ms)),
        reqPerSec: runs.reduce((sum, [, t]) => sum + t.reqPerSec, 0) / runs.length,
      };
    };
    const direct = targets[0] === undefined ? undefined : summary(targets[0]);
    for (const target of targets) {
      const measurement = `${request.label}, ${target.name}`;
      const m = summary(target);
      const isDirect = target === targets[0];
      const reference = target.reference ?? (isDirect ? 'reference' : undefined);
      if (m === undefined) {
        const why =
          typeof target.base !== 'string'
            ? target.base.missing
            : `failed: ${failures.get(target) ?? 'no result'}`;
        rows.push({
          measurement,
          measured: why,
          target: reference ?? '',
          verdict: reference === undefined ? 'MISSED' : '',
        });
        continue;
      }
      const base = isDirect ? undefined : direct;
      if (reference !== undefined || base === undefined) {
        rows.push({
          measurement,
          measured: figures(m, base),
          target: reference ?? '',
          verdict: '',
        });
        continue;
      }
      rows.push({
        measurement,
        measured: figures(m, base),
        target: `≤ +${MAX_ADDED_P50_MS} ms p50`,
        verdict: verdict(m.p50Ms - base.p50Ms <= MAX_ADDED_P50_MS),
      });
    }
  }
  return rows;
}
