import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createEcmHttpServer } from './ecm-http.ts';
import { parseMicroTime } from './kube/objects.ts';
import type { Method, RequestOptions, RestClient } from './kube/rest-client.ts';
import { apiClusterPerTest } from './testing/api-cluster.ts';
import { observe } from './testing/ecm-observer.ts';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const LEASE_DURATION = 15 * SECOND;
const RENEW_DEADLINE = 10 * SECOND;
const RETRY_PERIOD = 2 * SECOND;
const LEASE_PATH = '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/edgebox-ecm';

const newCluster = apiClusterPerTest();

/** A's way to the API, with a switch that cuts it off from the leader Lease only. */
class LeaseCutter implements RestClient {
  cut = false;
  private readonly inner: RestClient;
  constructor(inner: RestClient) {
    this.inner = inner;
  }
  request(method: Method, path: string, options?: RequestOptions): Promise<unknown> {
    if (this.cut && path.startsWith(LEASE_PATH)) {
      return Promise.reject(new Error(`${method} ${path}: connection refused (cut by the test)`));
    }
    return this.inner.request(method, path, options);
  }
}

async function getText(url: string): Promise<string> {
  const res = await fetch(url);
  return `${res.status} ${await res.text()}`;
}

describe('leader election', () => {
  it('leader failover hands over within one lease duration and no eviction is done twice', async () => {
    const c = await newCluster();
    c.addNode('healthy', { zone: 'b' });
    c.addNode('plain', { zone: 'a' });
    const tolerations = [30, 60, 95, 100, 600];
    for (const s of tolerations) c.addPod(`t${s}`, 'plain', { tolerationSeconds: s });
    const config = {
      mode: 'standalone' as const,
      leaderElect: true,
      leaderElectNamespace: 'kube-system',
    };
    let cutter: LeaseCutter | undefined;
    const a = c.createEcm('ecm-a', config, (inner) => (cutter = new LeaseCutter(inner)));
    const b = c.createEcm('ecm-b', config);
    await c.startEcm(a);
    await c.advanceUntil(() => a.isLeader, 10 * SECOND);
    await c.startEcm(b);
    await c.advance(5 * SECOND);
    expect(b.isLeader).toBe(false);

    // /healthz and /metrics of the standby.
    const server = createEcmHttpServer(() => b.health(), b.registry);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    expect(await getText(`${base}/healthz`)).toBe('200 ok: standby\n');
    expect(await getText(`${base}/metrics`)).toContain('edgebox_ecm_is_leader 0');

    const seenByA = observe(a.cache, c.clock);
    c.partition('plain');
    await c.advanceUntil(() => seenByA.evictedAt.has('default/t60'), 5 * MINUTE);
    const taintedAt = seenByA.noExecuteAt.get('plain')?.[0] as number;

    // A loses its way to the leader Lease (but not to the rest of the API) just before t95 is due.
    await c.advance(taintedAt + 90 * SECOND - c.clock.now());
    (cutter as LeaseCutter).cut = true;
    const cutAt = c.clock.now();
    const lastRenewal =
      (parseMicroTime(
        (c.api.store.mustGet('leases', 'edgebox-ecm', 'kube-system').spec as { renewTime: string })
          .renewTime,
      ) as number) / 1000;
    const leadAt = await c.advanceUntil(
      () => b.isLeader,
      LEASE_DURATION + RETRY_PERIOD + 5 * SECOND,
    );
    expect(a.isLeader).toBe(false);
    // B waits out a whole lease duration from the last renewal it saw, and no more.
    expect(leadAt - lastRenewal).toBeGreaterThanOrEqual(LEASE_DURATION);
    expect(leadAt - lastRenewal).toBeLessThanOrEqual(LEASE_DURATION + RETRY_PERIOD);
    expect(leadAt - cutAt).toBeLessThanOrEqual(LEASE_DURATION + RETRY_PERIOD);
    const lease = c.api.store.mustGet('leases', 'edgebox-ecm', 'kube-system').spec as {
      holderIdentity: string;
      leaseTransitions: number;
    };
    expect(lease.holderIdentity).toBe('ecm-b');
    expect(lease.leaseTransitions).toBe(1);
    expect(await getText(`${base}/healthz`)).toBe('200 ok: leading\n');

    // Every pod is evicted in the end, each exactly once, and A wrote nothing
    // after its renew deadline: it stopped before B could start.
    const seenByB = observe(b.cache, c.clock);
    await c.advanceUntil(() => seenByB.evictedAt.has('default/t600'), 20 * MINUTE);
    const writes = c.api.requests.filter((r) => r.method !== 'GET');
    const lateWritesByA = writes.filter(
      (r) => r.userAgent === 'edgebox-ecm/ecm-a' && r.startedAt >= lastRenewal + RENEW_DEADLINE,
    );
    expect(lateWritesByA).toEqual([]);
    for (const s of tolerations) {
      const deletes = writes.filter(
        (r) =>
          r.method === 'DELETE' &&
          r.path === `/api/v1/namespaces/default/pods/t${s}` &&
          (r.status ?? 0) < 300,
      );
      expect(deletes, `successful deletions of pod t${s}`).toHaveLength(1);
      const pod = c.pod(`t${s}`) as { metadata: { deletionTimestamp?: string } };
      expect(pod.metadata.deletionTimestamp).toBeDefined();
    }
    const byA = writes.filter((r) => r.method === 'DELETE' && r.userAgent === 'edgebox-ecm/ecm-a');
    expect(byA.map((r) => r.path.split('/').pop())).toEqual(['t30', 't60', 't95']);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
});
