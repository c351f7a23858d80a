import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The ECM's Prometheus metrics, registered on the registry given (one per instance). */
export class EcmMetrics {
  readonly nodesByState: Gauge<'state'>;
  readonly nodeEvictions: Counter<'zone'>;
  readonly podEvictions: Counter;
  readonly taintChanges: Counter<'key' | 'effect' | 'operation'>;
  readonly zoneState: Gauge<'zone' | 'state'>;
  readonly zoneSize: Gauge<'zone'>;
  readonly zoneUnhealthyNodes: Gauge<'zone'>;
  readonly monitorPassSeconds: Histogram;
  readonly isLeader: Gauge;
  readonly tolerationRewrites: Counter<'operation'>;
  readonly writeErrors: Counter<'operation'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.nodesByState = new Gauge({
      name: 'edgebox_ecm_nodes',
      help: 'Nodes by state: ready, not_ready, unreachable, running_offline (autonomous, pods kept), autonomy_expired',
      labelNames: ['state'],
      registers,
    });
    this.nodeEvictions = new Counter({
      name: 'edgebox_ecm_node_evictions_total',
      help: 'NoExecute not-ready/unreachable taints added, per zone (upstream node_collector_evictions_total)',
      labelNames: ['zone'],
      registers,
    });
    this.podEvictions = new Counter({
      name: 'edgebox_ecm_pod_evictions_total',
      help: 'Pods deleted by taint-based eviction',
      registers,
    });
    this.taintChanges = new Counter({
      name: 'edgebox_ecm_taint_changes_total',
      help: 'Taints added to or removed from nodes',
      labelNames: ['key', 'effect', 'operation'],
      registers,
    });
    this.zoneState = new Gauge({
      name: 'edgebox_ecm_zone_state',
      help: '1 for the current disruption state of each zone (Normal, PartialDisruption, FullDisruption)',
      labelNames: ['zone', 'state'],
      registers,
    });
    this.zoneSize = new Gauge({
      name: 'edgebox_ecm_zone_size',
      help: 'Nodes counted in each zone',
      labelNames: ['zone'],
      registers,
    });
    this.zoneUnhealthyNodes = new Gauge({
      name: 'edgebox_ecm_zone_unhealthy_nodes',
      help: 'Nodes not Ready in each zone',
      labelNames: ['zone'],
      registers,
    });
    this.monitorPassSeconds = new Histogram({
      name: 'edgebox_ecm_monitor_pass_seconds',
      help: 'Duration of one node health monitor pass',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5, 1, 5],
      registers,
    });
    this.isLeader = new Gauge({
      name: 'edgebox_ecm_is_leader',
      help: '1 while this instance holds the leader lease',
      registers,
    });
    this.tolerationRewrites = new Counter({
      name: 'edgebox_ecm_toleration_rewrites_total',
      help: 'Cooperative mode: pods whose NoExecute tolerations were extended (protect) or restored (restore)',
      labelNames: ['operation'],
      registers,
    });
    this.writeErrors = new Counter({
      name: 'edgebox_ecm_write_errors_total',
      help: 'API writes that failed, by operation',
      labelNames: ['operation'],
      registers,
    });
  }
}
