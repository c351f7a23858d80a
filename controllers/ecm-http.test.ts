import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createMetricsRegistry } from '../src/metrics.ts';
import type { EcmHealth } from './ecm.ts';
import { createEcmHttpServer, parseListenAddress } from './ecm-http.ts';
import { EcmMetrics } from './ecm-metrics.ts';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function serve(health: () => EcmHealth): Promise<{ base: string; metrics: EcmMetrics }> {
  const registry = createMetricsRegistry();
  const metrics = new EcmMetrics(registry);
  const server = createEcmHttpServer(health, registry);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, metrics };
}

describe('/healthz and /metrics', () => {
  it('answers /healthz with 503 until the informers are synced, then 200 leading or standby', async () => {
    let health: EcmHealth = { ok: false, detail: 'informers not synced' };
    const { base } = await serve(() => health);
    for (const path of ['/healthz', '/livez', '/readyz']) {
      const res = await fetch(`${base}${path}`);
      expect(res.status).toBe(503);
      expect(await res.text()).toBe('not ok: informers not synced\n');
    }
    health = { ok: true, detail: 'standby' };
    const res = await fetch(`${base}/healthz?verbose`);
    expect(`${res.status} ${await res.text()}`).toBe('200 ok: standby\n');
  });

  it('serves the ECM metrics in the Prometheus text format', async () => {
    const { base, metrics } = await serve(() => ({ ok: true, detail: 'leading' }));
    metrics.nodesByState.set({ state: 'running_offline' }, 2);
    metrics.nodeEvictions.inc({ zone: 'eu/plant-a' });
    metrics.podEvictions.inc();
    metrics.taintChanges.inc({
      key: 'node.kubernetes.io/unreachable',
      effect: 'NoExecute',
      operation: 'add',
    });
    metrics.zoneState.set({ zone: 'eu/plant-a', state: 'PartialDisruption' }, 1);
    metrics.isLeader.set(1);
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const line of [
      'edgebox_ecm_nodes{state="running_offline"} 2',
      'edgebox_ecm_node_evictions_total{zone="eu/plant-a"} 1',
      'edgebox_ecm_pod_evictions_total 1',
      'edgebox_ecm_taint_changes_total{key="node.kubernetes.io/unreachable",effect="NoExecute",operation="add"} 1',
      'edgebox_ecm_zone_state{zone="eu/plant-a",state="PartialDisruption"} 1',
      'edgebox_ecm_is_leader 1',
      '# TYPE edgebox_ecm_monitor_pass_seconds histogram',
      '# TYPE edgebox_ecm_zone_size gauge',
      '# TYPE edgebox_ecm_zone_unhealthy_nodes gauge',
      '# TYPE edgebox_ecm_toleration_rewrites_total counter',
      '# TYPE edgebox_ecm_write_errors_total counter',
      // The process metrics every edgebox part exports.
      '# TYPE edgebox_process_resident_memory_bytes gauge',
    ]) {
      expect(text).toContain(line);
    }
  });

  it('refuses other paths and methods', async () => {
    const { base } = await serve(() => ({ ok: true, detail: 'leading' }));
    const missing = await fetch(`${base}/debug/pprof`);
    expect(`${missing.status} ${await missing.text()}`).toBe(
      '404 not found: try /healthz or /metrics\n',
    );
    const post = await fetch(`${base}/healthz`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    await post.body?.cancel();
  });
});

describe('--metrics-listen', () => {
  it.each<[string, { host: string; port: number } | RegExp]>([
    ['0.0.0.0:10290', { host: '0.0.0.0', port: 10290 }],
    [':10290', { host: '0.0.0.0', port: 10290 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ['[::1]:9000', { host: '::1', port: 9000 }],
    ['localhost:8080', { host: 'localhost', port: 8080 }],
    ['10290', /is not host:port/],
    ['host:port', /is not host:port/],
    ['host:70000', /port out of range/],
  ])('%s', (text, expected) => {
    const parsed = parseListenAddress(text);
    if (expected instanceof RegExp) {
      expect(parsed).toBeInstanceOf(Error);
      expect((parsed as Error).message).toMatch(expected);
      expect((parsed as Error).message).toContain(JSON.stringify(text));
    } else {
      expect(parsed).toEqual(expected);
    }
  });
});
