import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach } from 'vitest';
import { FakeApiServer } from '../../test/apiserver/server.ts';
import { silentLogger } from '../../src/log.ts';
import { FakeClock } from '../clock.ts';
import { defaultEcmConfig, type EcmConfig } from '../config.ts';
import { Ecm } from '../ecm.ts';
import type { CachedKind } from '../kube/cluster-cache.ts';
import { KubeConfigRestClient, type RestClient } from '../kube/rest-client.ts';
import { formatMicroTime, formatTime } from '../kube/objects.ts';
import { NODE_LEASE_NAMESPACE } from '../kube/well-known.ts';
import {
  leaseObject,
  nodeObject,
  podObject,
  readyConditions,
  runningPodStatus,
  type JsonObject,
  type NodeOptions,
  type PodOptions,
} from './cluster-objects.ts';
import { LEASE_RENEW_INTERVAL_MS } from './memory-cluster.ts';
import { SimulatedTime } from './simulated-time.ts';

interface KubeObjectLike {
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    deletionTimestamp?: string;
  };
}

/**
 * The ECM against the kube-apiserver double over real HTTP, with every
 * party on one FakeClock: the double stamps objects with it, simulated
 * kubelets renew Leases on it, the ECMs decide on it. `advance` runs
 * simulated time forward one timer at a time, and before each step waits
 * until every ECM is idle and has seen every write through its informers.
 */
export class ApiCluster {
  readonly clock: FakeClock;
  private readonly time: SimulatedTime;
  readonly api: FakeApiServer;
  readonly ecms: Ecm[] = [];
  private readonly running = new Set<Ecm>();
  private readonly dir = mkdtempSync(join(tmpdir(), 'ecm-test-'));
  private readonly offline = new Set<string>();
  private readonly nodeNames: string[] = [];
  private pending: Promise<void>[] = [];
  private kubeconfigFile = '';

  constructor(startMs = Date.UTC(2025, 0, 1)) {
    this.clock = new FakeClock(startMs);
    this.time = new SimulatedTime(this.clock, () => this.settle());
    this.api = new FakeApiServer({ tls: true, now: () => this.clock.now() });
  }

  async start(): Promise<void> {
    await this.api.start();
    this.kubeconfigFile = this.api.kubeconfigPath(this.dir);
    this.clock.setTimer(LEASE_RENEW_INTERVAL_MS, () => this.beat());
  }

  async stop(): Promise<void> {
    for (const ecm of [...this.running]) await this.stopEcm(ecm, { release: false });
    await this.api.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigFile);
    return kc;
  }

  /** A new ECM instance (not started); `wrapClient` lets a test put a fault in its path. */
  createEcm(
    identity: string,
    config: Partial<EcmConfig> = {},
    wrapClient?: (client: RestClient) => RestClient,
  ): Ecm {
    const kubeConfig = this.kubeConfig();
    const base = new KubeConfigRestClient(kubeConfig, { userAgent: `edgebox-ecm/${identity}` });
    const ecm = new Ecm({
      config: { ...defaultEcmConfig({ leaderElect: false }), ...config },
      kubeConfig,
      leaseNamespace: 'kube-system',
      identity,
      client: wrapClient === undefined ? base : wrapClient(base),
      clock: this.clock,
      logger: silentLogger(),
      trackEchoes: true,
    });
    this.ecms.push(ecm);
    return ecm;
  }

  async startEcm(ecm: Ecm): Promise<void> {
    await ecm.start();
    this.running.add(ecm);
    await this.settle();
  }

  /** Stops an ECM; without `release` it is a crash (the lease is left to expire). */
  async stopEcm(ecm: Ecm, options: { release: boolean }): Promise<void> {
    this.running.delete(ecm);
    await ecm.stop(options);
  }

  addNode(name: string, options: NodeOptions = {}): void {
    const now = this.clock.now();
    const raw = nodeObject(name, options);
    const created = this.api.store.create('nodes', raw);
    this.write(
      'node',
      name,
      this.api.store.updateStatus('nodes', {
        ...created,
        status: { conditions: readyConditions(now) },
      }),
    );
    this.write('lease', name, this.api.store.create('leases', leaseObject(name, now)));
    this.nodeNames.push(name);
  }

  addPod(name: string, nodeName: string, options: PodOptions = {}): void {
    const raw = podObject(name, nodeName, options);
    const created = this.api.store.create('pods', raw);
    const ns = (raw.metadata as { namespace: string }).namespace;
    this.write(
      'pod',
      `${ns}/${name}`,
      this.api.store.updateStatus('pods', {
        ...created,
        status: runningPodStatus(this.clock.now()),
      }),
    );
  }

  /** Merge-patches a node's annotations (null removes one), as kubectl annotate does. */
  annotateNode(name: string, annotations: Record<string, string | null>): void {
    this.write(
      'node',
      name,
      this.api.store.patch('nodes', name, '', 'merge', { metadata: { annotations } }),
    );
  }

  /** Strategic-merge-patches node status conditions, as a kubelet or the stock controller would. */
  patchNodeConditions(name: string, conditions: JsonObject[]): void {
    this.write(
      'node',
      name,
      this.api.store.patch(
        'nodes',
        name,
        '',
        'strategic',
        { status: { conditions } },
        { subresource: 'status' },
      ),
    );
  }

  node(name: string): JsonObject {
    return this.api.store.mustGet('nodes', name) as unknown as JsonObject;
  }

  pod(name: string, namespace = 'default'): JsonObject | undefined {
    return this.api.store.get('pods', name, namespace) as unknown as JsonObject | undefined;
  }

  /** Cuts the node off: its kubelet stops renewing its Lease. */
  partition(name: string): void {
    this.offline.add(name);
  }

  /** Reconnects a node: its kubelet posts Ready and renews its Lease at once. */
  reconnect(name: string): void {
    this.offline.delete(name);
    this.patchNodeConditions(name, readyConditions(this.clock.now()));
    this.renew(name);
  }

  /** Waits until every running ECM is idle and has seen every write made so far. */
  async settle(): Promise<void> {
    for (;;) {
      if (this.pending.length === 0 && [...this.running].every((e) => e.idle)) return;
      const pending = this.pending;
      this.pending = [];
      await Promise.all(pending);
      await Promise.all([...this.running].map((e) => e.settled()));
      if (this.pending.length === 0 && [...this.running].every((e) => e.idle)) return;
    }
  }

  /** Runs simulated time forward by `ms`, settling after every timer. */
  advance(ms: number): Promise<void> {
    return this.time.advance(ms);
  }

  /** Runs forward until `predicate` holds (checked after each timer); returns that time. */
  advanceUntil(predicate: () => boolean, limitMs: number): Promise<number> {
    return this.time.advanceUntil(predicate, limitMs);
  }

  /** Events recorded in a namespace ('default' holds node events). */
  events(namespace = 'default'): JsonObject[] {
    return this.api.store.list('events', { namespace }) as unknown as JsonObject[];
  }

  formatTime(ms: number): string {
    return formatTime(ms);
  }

  private beat(): void {
    for (const name of this.nodeNames) if (!this.offline.has(name)) this.renew(name);
    this.clock.setTimer(LEASE_RENEW_INTERVAL_MS, () => this.beat());
  }

  private renew(name: string): void {
    this.write(
      'lease',
      name,
      this.api.store.patch('leases', name, NODE_LEASE_NAMESPACE, 'merge', {
        spec: { renewTime: formatMicroTime(this.clock.now()) },
      }),
    );
  }

  /** Remembers a write so settle() waits until every running ECM's cache has it. */
  private write(kind: CachedKind, key: string, obj: unknown): void {
    const rv = (obj as KubeObjectLike).metadata?.resourceVersion;
    if (rv === undefined) return;
    for (const ecm of this.running) this.pending.push(ecm.cache.waitFor(kind, key, rv));
  }
}

/**
 * For a test file: starts a fresh ApiCluster when called, and stops it
 * after the test that started it.
 */
export function apiClusterPerTest(): () => Promise<ApiCluster> {
  let current: ApiCluster | undefined;
  afterEach(async () => {
    await current?.stop();
    current = undefined;
  });
  return async () => {
    const cluster = new ApiCluster();
    current = cluster;
    await cluster.start();
    return cluster;
  };
}
