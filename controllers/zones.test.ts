import { describe, expect, it } from 'vitest';
import type { TaintUpdate } from './actuator/cluster-writer.ts';
import { computeZoneState, zoneEvictionQps } from './lifecycle/zones.ts';
import { NO_EXECUTE } from './lifecycle/taints.ts';
import { MemoryCluster } from './testing/memory-cluster.ts';

const MINUTE = 60_000;

/** Times (ms) at which a NoExecute taint was put on a node of `prefix`, in order. */
function noExecuteTaintTimes(cluster: MemoryCluster, prefix: string): number[] {
  return cluster.writer.writes
    .filter(
      (w) =>
        w.operation === 'node-taints' &&
        w.name.startsWith(prefix) &&
        (w.detail as TaintUpdate).added.some((t) => t.effect === NO_EXECUTE),
    )
    .map((w) => w.at);
}

function gaps(times: number[]): number[] {
  return times.slice(1).map((t, i) => t - (times[i] as number));
}

function readyCondition(status: string) {
  return { type: 'Ready', status };
}

describe('zone disruption states and eviction rates', () => {
  it('zone states and eviction rates match upstream numbers', async () => {
    // ComputeZoneState: Full with no Ready node; Partial with more than 2 not
    // Ready making at least 55 %; Normal otherwise.
    const zone = (ready: number, notReady: number) =>
      computeZoneState(
        [
          ...Array.from({ length: ready }, () => readyCondition('True')),
          ...Array.from({ length: notReady }, () => readyCondition('Unknown')),
        ],
        0.55,
      ).state;
    expect(zone(0, 3)).toBe('FullDisruption');
    expect(zone(0, 1)).toBe('FullDisruption');
    expect(zone(2, 3)).toBe('PartialDisruption'); // 60 %
    expect(zone(1, 2)).toBe('Normal'); // 67 % but only two
    expect(zone(9, 11)).toBe('PartialDisruption'); // exactly 55 %
    expect(zone(10, 10)).toBe('Normal'); // 50 %
    expect(computeZoneState([undefined, readyCondition('True')], 0.55).state).toBe('Normal');
    // setLimiterInZone with the default flags.
    const rates = { evictionQps: 0.1, secondaryEvictionQps: 0.01, largeClusterThreshold: 50 };
    expect(zoneEvictionQps('Normal', 10, rates)).toBe(0.1);
    expect(zoneEvictionQps('FullDisruption', 10, rates)).toBe(0.1);
    expect(zoneEvictionQps('PartialDisruption', 51, rates)).toBe(0.01);
    expect(zoneEvictionQps('PartialDisruption', 50, rates)).toBe(0);

    // The same numbers, observed on a running controller. Zone "big" (60
    // nodes, 40 cut off) is partially disrupted and large: 0.01 nodes/s.
    // Zone "mid" (10 nodes, 3 cut off) stays Normal: 0.1/s. Zone "small"
    // (5 nodes, 3 cut off) is partially disrupted and small: no tainting.
    // Zone "gone" (2 nodes, both cut off) is fully disrupted: 0.1/s, since
    // other zones are healthy.
    const cluster = new MemoryCluster();
    const layout: [string, number, number][] = [
      ['big', 60, 40],
      ['mid', 10, 3],
      ['small', 5, 3],
      ['gone', 2, 2],
    ];
    for (const [zoneName, size] of layout) {
      for (let i = 0; i < size; i++)
        cluster.addNode(`${zoneName}-${i}`, { zone: zoneName, region: 'r1' });
    }
    cluster.start();
    await cluster.advance(MINUTE);
    for (const [zoneName, , down] of layout) {
      for (let i = 0; i < down; i++) cluster.partition(`${zoneName}-${i}`);
    }
    await cluster.advance(30 * MINUTE);

    const states = cluster.core.lifecycle?.zoneStateSnapshot();
    expect(states?.get('r1/big')).toBe('PartialDisruption');
    expect(states?.get('r1/mid')).toBe('Normal');
    expect(states?.get('r1/small')).toBe('PartialDisruption');
    expect(states?.get('r1/gone')).toBe('FullDisruption');
    const zoneRates = cluster.core.lifecycle?.zoneRateSnapshot();
    expect(zoneRates?.get('r1/big')).toBe(0.01);
    expect(zoneRates?.get('r1/mid')).toBe(0.1);
    expect(zoneRates?.get('r1/small')).toBe(0);
    expect(zoneRates?.get('r1/gone')).toBe(0.1);

    // Big: one node per 100 s at most; 30 min minus the grace gives 17 or 18.
    const big = noExecuteTaintTimes(cluster, 'big-');
    expect(big.length).toBeGreaterThanOrEqual(16);
    expect(big.length).toBeLessThanOrEqual(18);
    for (const g of gaps(big)) expect(g).toBeGreaterThanOrEqual(100_000);
    // Mid and gone: every cut-off node, at least 10 s apart.
    const mid = noExecuteTaintTimes(cluster, 'mid-');
    expect(mid).toHaveLength(3);
    for (const g of gaps(mid)) expect(g).toBeGreaterThanOrEqual(10_000);
    const gone = noExecuteTaintTimes(cluster, 'gone-');
    expect(gone).toHaveLength(2);
    for (const g of gaps(gone)) expect(g).toBeGreaterThanOrEqual(10_000);
    // Small: none.
    expect(noExecuteTaintTimes(cluster, 'small-')).toHaveLength(0);

    // /metrics says the same.
    const metrics = await cluster.registry.metrics();
    expect(metrics).toContain('edgebox_ecm_zone_state{zone="r1/big",state="PartialDisruption"} 1');
    expect(metrics).toContain(
      'edgebox_ecm_zone_state{zone="r1/small",state="PartialDisruption"} 1',
    );
    expect(metrics).toContain('edgebox_ecm_zone_state{zone="r1/gone",state="FullDisruption"} 1');
    expect(metrics).toContain(`edgebox_ecm_node_evictions_total{zone="r1/big"} ${big.length}`);
    expect(metrics).toContain('edgebox_ecm_nodes{state="unreachable"} 48');
    expect(metrics).toMatch(
      /edgebox_ecm_taint_changes_total\{key="node.kubernetes.io\/unreachable",effect="NoSchedule",operation="add"\} 48/,
    );
    expect(cluster.backgroundErrors).toEqual([]);
    cluster.stop();
  });

  it('all zones down stops evictions', async () => {
    const cluster = new MemoryCluster();
    for (const zoneName of ['a', 'b']) {
      for (let i = 0; i < 3; i++) {
        const node = `${zoneName}-${i}`;
        cluster.addNode(node, { zone: zoneName });
        cluster.addPod(`pod-${node}`, node, { tolerationSeconds: 300 });
      }
    }
    cluster.start();
    await cluster.advance(MINUTE);

    // Zone a goes down: its nodes get NoExecute taints (zone b is healthy).
    for (let i = 0; i < 3; i++) cluster.partition(`a-${i}`);
    await cluster.advance(2 * MINUTE);
    const tainted = cluster.cache
      .nodes()
      .filter((n) => n.spec.taints?.some((t) => t.effect === NO_EXECUTE));
    expect(tainted.map((n) => n.metadata.name).sort()).toEqual(['a-0', 'a-1', 'a-2']);
    expect(cluster.core.eviction?.pendingEvictions().size).toBe(3);

    // Then zone b too: every zone is fully disrupted. Upstream assumes the
    // control plane is the one cut off, removes NoExecute taints and stops.
    for (let i = 0; i < 3; i++) cluster.partition(`b-${i}`);
    await cluster.advance(60 * MINUTE);
    for (const node of cluster.cache.nodes()) {
      expect(node.spec.taints?.filter((t) => t.effect === NO_EXECUTE) ?? []).toEqual([]);
      expect(node.spec.taints?.some((t) => t.key === 'node.kubernetes.io/unreachable')).toBe(true);
    }
    expect(cluster.writer.writes.filter((w) => w.operation === 'pod-evicted')).toEqual([]);
    expect(cluster.core.eviction?.pendingEvictions().size).toBe(0);
    expect(cluster.core.lifecycle?.zoneRateSnapshot().get('a')).toBe(0);
    expect(cluster.core.lifecycle?.zoneRateSnapshot().get('b')).toBe(0);
    const cancelled = cluster.writer.events.filter((e) =>
      e.message.startsWith('Cancelling deletion'),
    );
    expect(cancelled).toHaveLength(3);

    // One node back: the mode ends, rates return, and the still-silent nodes
    // are tainted again once their fresh grace period is over.
    cluster.reconnect('b-0');
    await cluster.advance(5 * MINUTE);
    expect(cluster.core.lifecycle?.zoneRateSnapshot().get('a')).toBe(0.1);
    expect(noExecuteTaintTimes(cluster, 'b-').length).toBeGreaterThan(0);
    expect(cluster.backgroundErrors).toEqual([]);
    cluster.stop();
  });
});
