import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { createLogger, type Logger } from '../../src/log.ts';
import type { FakeApiServer } from '../../test/apiserver/server.ts';
import { hubConfigSchema } from '../config.ts';
import { startHub, type RunningHub } from '../hub.ts';
import {
  changeWhileOffline,
  DEMO_NAMESPACE,
  DEMO_NODE,
  DEMO_TOLERATION_SECONDS,
  nodeView,
  PLAIN_NODE,
  PLAIN_NODE_POD,
  podsOn,
  renewNodeLease,
  CONTROL_PLANE_NODE,
  startDemoControlPlane,
  type NodeView,
} from './demo-control-plane.ts';
import { DemoEcm } from './demo-ecm.ts';
import { sandboxUnavailable, unameInSandbox } from './demo-sandbox.ts';
import { DemoKubelet, KUBELET_USER_AGENT, summarize, type HubAnswer } from './demo-kubelet.ts';
import type { DemoSource, Timeline } from './demo-timeline.ts';

/** A step that did not behave: the demo stops and says which and why, in one line. */
export class DemoFailure extends Error {
  readonly step: string;
  readonly reason: string;
  constructor(step: string, reason: string) {
    super(`${step}: ${reason}`);
    this.name = 'DemoFailure';
    this.step = step;
    this.reason = reason;
  }
}

export interface DemoOptions {
  timeline: Timeline;
  /** Pause between acts so a person can read along (a fifth of it after each step); 0 in tests. */
  paceMs: number;
  /** The hub's logger; errors only (on stderr) unless EDGEBOX_LOG_LEVEL says otherwise. */
  log?: Logger;
  /** How long any one expected change may take before the demo gives up. */
  stepTimeoutMs?: number;
}

/** The demo node's pods: the kubelet's `spec.nodeName` selector leaves out web-9 on edge-2. */
const NODE_PODS = ['db-0', 'web-0', 'web-1'];
const POD_SELECTOR = `fieldSelector=${encodeURIComponent(`spec.nodeName=${DEMO_NODE}`)}`;
const POD_PATH = (name: string) => `/api/v1/namespaces/${DEMO_NAMESPACE}/pods/${name}`;

function check(step: string, ok: boolean, reason: string): void {
  if (!ok) throw new DemoFailure(step, reason);
}

/** The value, or a DemoFailure for `step` carrying the Error's message. */
function must<T>(step: string, value: T | Error): T {
  if (value instanceof Error) throw new DemoFailure(step, value.message);
  return value;
}

function sourceOf(step: string, answer: HubAnswer, expected: DemoSource): DemoSource {
  check(
    step,
    answer.source === expected,
    `expected X-Edgebox-Source: ${expected}, got ${answer.source}`,
  );
  return expected;
}

function describeAutonomy(view: NodeView): string {
  const c = view.edgeAutonomy;
  return c === undefined
    ? 'has no EdgeAutonomy condition'
    : `EdgeAutonomy=${c.status} (${c.reason}: ${c.message})`;
}

function same(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * One run of the demo: what it started (so all of it is stopped whatever step
 * failed) and the four acts, each checking what the client saw.
 */
class DemoRun {
  readonly #opts: DemoOptions;
  readonly #t: Timeline;
  readonly #log: Logger;
  readonly #stepTimeoutMs: number;
  #dataDir: string | undefined;
  #api: FakeApiServer | undefined;
  #hub: RunningHub | undefined;
  #hubPort = 0;
  #kubelet: DemoKubelet | undefined;
  #ecm: DemoEcm | undefined;
  #heartbeats: NodeJS.Timeout | undefined;
  #controlPlaneHeartbeats: NodeJS.Timeout | undefined;

  constructor(opts: DemoOptions) {
    this.#opts = opts;
    this.#t = opts.timeline;
    // The hub's warnings ("upstream down") are what the timeline tells; keep the terminal readable.
    this.#log =
      opts.log ??
      createLogger({ name: 'edgebox-hub', level: process.env.EDGEBOX_LOG_LEVEL ?? 'error' });
    this.#stepTimeoutMs = opts.stepTimeoutMs ?? 15_000;
  }

  get #apiServer(): FakeApiServer {
    if (this.#api === undefined) throw new Error('the control plane is not running');
    return this.#api;
  }

  get #running(): RunningHub {
    if (this.#hub === undefined) throw new Error('EdgeHub is not running');
    return this.#hub;
  }

  get #client(): DemoKubelet {
    if (this.#kubelet === undefined) throw new Error('the kubelet-like client is not running');
    return this.#kubelet;
  }

  async #record(step: string, saw: string, source: DemoSource): Promise<void> {
    this.#t.record(step, saw, source);
    if (this.#opts.paceMs > 0) await delay(this.#opts.paceMs / 5);
  }

  async #pause(): Promise<void> {
    if (this.#opts.paceMs > 0) await delay(this.#opts.paceMs);
  }

  /** Checks `cond` every 10 ms until it holds; a DemoFailure naming `step` and `what` otherwise. */
  async #until(step: string, what: string, cond: () => boolean): Promise<void> {
    const deadline = performance.now() + this.#stepTimeoutMs;
    while (!cond()) {
      if (performance.now() > deadline) {
        throw new DemoFailure(step, `${what} did not happen within ${this.#stepTimeoutMs / 1000}s`);
      }
      await delay(10);
    }
  }

  async #startHub(): Promise<RunningHub> {
    if (this.#dataDir === undefined) throw new Error('no data dir');
    const config = hubConfigSchema.parse({
      server: [this.#apiServer.url],
      // The same port after a restart: kubelet's kubeconfig names it.
      listen: `127.0.0.1:${this.#hubPort}`,
      metricsListen: '127.0.0.1:0',
      dataDir: this.#dataDir,
      nodeName: DEMO_NODE,
      cacheAgents: ['kubelet'],
      // Quick transitions for a demo; production defaults are 5s / 2s / 3 / 2.
      healthInterval: '250ms',
      healthTimeout: '500ms',
      healthFailureThreshold: 2,
      healthSuccessThreshold: 1,
      logLevel: 'warn',
    });
    this.#hub = await startHub(config, { log: this.#log });
    this.#hubPort = this.#hub.address.port;
    return this.#hub;
  }

  #newKubelet(): DemoKubelet {
    this.#kubelet = new DemoKubelet({
      hubUrl: this.#running.url,
      nodeName: DEMO_NODE,
      namespace: DEMO_NAMESPACE,
    });
    return this.#kubelet;
  }

  async act1Online(): Promise<void> {
    this.#t.say(
      'Act 1: an edge node online. kubelet talks to EdgeHub, EdgeHub to the control plane.',
    );
    this.#dataDir = await mkdtemp(join(tmpdir(), 'edgebox-demo-'));
    this.#api = await startDemoControlPlane();
    const api = this.#api;
    await this.#record(
      'control plane up',
      `kube-apiserver double at ${api.url}: nodes edge-1 (autonomous), edge-2, ${CONTROL_PLANE_NODE}; pods db-0, web-0, web-1 on edge-1 and web-9 on edge-2; ConfigMaps web-config, db-config; Secret db-credentials`,
      '-',
    );
    this.#controlPlaneHeartbeats = setInterval(() => renewNodeLease(api, CONTROL_PLANE_NODE), 500);
    this.#ecm = new DemoEcm(api.url, this.#dataDir);
    const ecm = this.#ecm;
    await this.#until(
      'ECM started',
      `the ECM to mark ${DEMO_NODE} autonomous (EdgeAutonomy)`,
      () => {
        const failed = ecm.exitReason();
        if (failed !== undefined) throw new DemoFailure('ECM started', failed);
        return nodeView(api, DEMO_NODE).edgeAutonomy !== undefined;
      },
    );
    await this.#record(
      'ECM started',
      `edgebox ecm watches the cluster; ${DEMO_NODE} ${describeAutonomy(nodeView(api, DEMO_NODE))}; ${PLAIN_NODE} is a plain node`,
      '-',
    );
    const hub = await this.#startHub();
    await this.#until(
      'EdgeHub started',
      'the upstream health check to pass',
      () => hub.health.overall() === 'up',
    );
    await this.#record(
      'EdgeHub started',
      `listening on ${hub.url}; upstream ${api.url} is up; cache in ${this.#dataDir}`,
      '-',
    );

    const kubelet = this.#newKubelet();
    await kubelet.start();
    // Both nodes' kubelets heartbeat: edge-1's through EdgeHub, edge-2's (not run here) straight to the store.
    this.#heartbeats = setInterval(() => {
      renewNodeLease(api, PLAIN_NODE);
      void this.#kubelet?.renewLease();
    }, 500);
    const lists = api.requests.filter(
      (q) => q.userAgent === KUBELET_USER_AGENT && q.verb === 'list',
    );
    check(
      'online sync',
      same(kubelet.podNames(), NODE_PODS),
      `informer pods: ${kubelet.podNames().join(', ')}`,
    );
    check(
      'online sync',
      lists.length >= 3,
      "the informers' LISTs did not reach the control plane as kubelet",
    );
    await this.#record(
      'online sync',
      `informers listed and watch: ${kubelet.describe()}`,
      'upstream',
    );
    const get = must('online GET', await kubelet.get(POD_PATH('web-0')));
    await this.#record(
      'online GET',
      `pod web-0: 200, resourceVersion ${get.resourceVersion}`,
      sourceOf('online GET', get.answer, 'upstream'),
    );
    const lease = must('heartbeat', await kubelet.renewLease());
    await this.#record(
      'heartbeat',
      `node Lease renewed: 200, resourceVersion ${lease.resourceVersion}`,
      sourceOf('heartbeat', lease.answer, 'upstream'),
    );
    // What was proxied is committed to the store before the cut, so the demo is repeatable.
    await hub.remote.drain();
  }

  async act2NodesDark(): Promise<void> {
    this.#t.say(
      'Act 2: the edge site goes dark. The ECM on the control plane sees two nodes stop heartbeating.',
    );
    const api = this.#apiServer;
    clearInterval(this.#heartbeats);
    this.#heartbeats = undefined;
    const darkAt = performance.now();
    await this.#until('nodes go dark', 'both nodes to be tainted unreachable', () =>
      [DEMO_NODE, PLAIN_NODE].every((n) => nodeView(api, n).unreachable),
    );
    const taintedAt = performance.now();
    await this.#record(
      'nodes go dark',
      `${((taintedAt - darkAt) / 1000).toFixed(1)} s after their last heartbeat both are tainted node.kubernetes.io/unreachable: ` +
        `${PLAIN_NODE} NoSchedule and NoExecute, ${DEMO_NODE} (autonomous) ${nodeView(api, DEMO_NODE).evicting ? 'NoExecute too' : 'NoSchedule only'}`,
      '-',
    );
    await this.#until(
      'plain node evicted',
      `pod ${PLAIN_NODE_POD} to be evicted`,
      () => !podsOn(api, PLAIN_NODE).includes(PLAIN_NODE_POD),
    );
    await this.#record(
      'plain node evicted',
      `${PLAIN_NODE}'s pod ${PLAIN_NODE_POD} evicted (deleted by the ECM) ${((performance.now() - taintedAt) / 1000).toFixed(1)} s after the taint (its tolerationSeconds: ${DEMO_TOLERATION_SECONDS})`,
      '-',
    );
    // Past the same toleration, and a monitor pass more, the autonomous node's pods are still bound.
    const keptUntil = taintedAt + DEMO_TOLERATION_SECONDS * 1000 + 1000;
    await delay(Math.max(0, keptUntil - performance.now()));
    const kept = podsOn(api, DEMO_NODE);
    check(
      'autonomous node kept',
      same(kept, NODE_PODS),
      `pods on ${DEMO_NODE}: ${kept.join(', ')}`,
    );
    const view = nodeView(api, DEMO_NODE);
    check(
      'autonomous node kept',
      view.unreachable && !view.evicting && view.edgeAutonomy !== undefined,
      `${DEMO_NODE}: ${describeAutonomy(view)}`,
    );
    await this.#record(
      'autonomous node kept',
      `${DEMO_NODE} is unreachable too, and keeps ${kept.join(', ')}: ${describeAutonomy(view)}`,
      '-',
    );
  }

  async act2Offline(): Promise<{ newPod: string; configMap: string }> {
    this.#t.say(
      "Act 3: the node's link to the control plane is down. kubelet keeps working from the node's cache.",
    );
    const hub = this.#running;
    const kubelet = this.#client;
    await this.#apiServer.stop();
    await this.#until(
      'control plane cut',
      'the hub to mark upstream down',
      () => hub.health.overall() === 'down',
    );
    await this.#until(
      'control plane cut',
      'the 3 informer watches to move to the cache',
      () => hub.local.openWatches() >= 3,
    );
    check('control plane cut', kubelet.errors.length === 0, kubelet.errors.join('; '));
    await this.#record(
      'control plane cut',
      `upstream down; the informers' watches re-opened on the hub's cache (${hub.local.openWatches()} open), no error`,
      'cache',
    );
    const get = must('offline GET', await kubelet.get(POD_PATH('web-0')));
    await this.#record(
      'offline GET',
      `pod web-0: 200, resourceVersion ${get.resourceVersion}`,
      sourceOf('offline GET', get.answer, 'cache'),
    );
    const list = must('offline LIST', await kubelet.list(`/api/v1/pods?${POD_SELECTOR}`));
    check('offline LIST', same(list.names, NODE_PODS), `got ${list.names.join(', ')}`);
    await this.#record(
      'offline LIST',
      `pods with spec.nodeName=${DEMO_NODE}: ${list.names.join(', ')}`,
      sourceOf('offline LIST', list.answer, 'cache'),
    );
    const secret = must(
      'offline GET',
      await kubelet.get(`/api/v1/namespaces/${DEMO_NAMESPACE}/secrets/db-credentials`),
    );
    await this.#record(
      'offline GET',
      'secret db-credentials: 200',
      sourceOf('offline GET', secret.answer, 'cache'),
    );
    const lease = must('offline heartbeat', await kubelet.renewLease());
    await this.#record(
      'offline heartbeat',
      `node Lease renewal acknowledged on the node: 200, resourceVersion ${lease.resourceVersion}`,
      sourceOf('offline heartbeat', lease.answer, 'cache'),
    );
    const event = await kubelet.postEvent('Demo', 'written while the control plane is away');
    check(
      'offline write',
      event.status === 503,
      `POST Event answered ${event.status}, expected 503`,
    );
    await this.#record(
      'offline write',
      `POST Event refused: 503 "${summarize(event.body)}"`,
      sourceOf('offline write', event, 'cache'),
    );
    const change = changeWhileOffline(this.#apiServer);
    await this.#record(
      'change upstream',
      `meanwhile the operators schedule pod ${change.newPod} on ${DEMO_NODE} and set THEME=dark in ${change.configMap}; the node cannot know yet`,
      '-',
    );
    return change;
  }

  async act3Reboot(): Promise<void> {
    this.#t.say('Act 4: the node reboots while still offline. EdgeHub serves its cache at once.');
    await this.#client.stop();
    await this.#running.close();
    this.#hub = undefined;
    const bootedAt = performance.now();
    const hub = await this.#startHub();
    const kubelet = this.#newKubelet();
    const first = must('hub restarted', await kubelet.list(`/api/v1/pods?${POD_SELECTOR}`));
    const firstAnswerMs = performance.now() - bootedAt;
    check('hub restarted', same(first.names, NODE_PODS), `got ${first.names.join(', ')}`);
    await this.#record(
      'hub restarted',
      `a new hub on the same data dir answered kubelet's first LIST ${firstAnswerMs.toFixed(0)} ms after it was started: ${first.names.join(', ')}`,
      sourceOf('hub restarted', first.answer, 'cache'),
    );
    await kubelet.start();
    check(
      'kubelet restarted',
      same(kubelet.podNames(), NODE_PODS),
      `informer pods: ${kubelet.podNames().join(', ')}`,
    );
    check('kubelet restarted', kubelet.errors.length === 0, kubelet.errors.join('; '));
    await this.#until(
      'kubelet restarted',
      'the informer watches to open on the cache',
      () => hub.local.openWatches() >= 3,
    );
    await this.#record(
      'kubelet restarted',
      `fresh informers synced from the cache: ${kubelet.describe()}`,
      'cache',
    );
  }

  async act4Restore(change: { newPod: string; configMap: string }): Promise<void> {
    this.#t.say(
      'Act 5: the link comes back. Offline watches close; kubelet goes back to the control plane.',
    );
    const api = this.#apiServer;
    const hub = this.#running;
    const kubelet = this.#client;
    const requestsBefore = api.requests.length;
    await api.restart();
    await this.#until(
      'link restored',
      'the hub to mark upstream up',
      () => hub.health.overall() === 'up',
    );
    await this.#until(
      'link restored',
      'the hub to close its offline watches',
      () => hub.local.openWatches() === 0,
    );
    const kubeletSince = (verb: string) =>
      api.requests
        .slice(requestsBefore)
        .filter((q) => q.userAgent === KUBELET_USER_AGENT && q.verb === verb);
    await this.#until(
      'link restored',
      'the informers to watch the control plane again',
      () => kubeletSince('watch').length >= 3,
    );
    const resumedFrom = [
      ...new Set(kubeletSince('watch').map((q) => q.query.get('resourceVersion') ?? '')),
    ];
    await this.#record(
      'link restored',
      `upstream up; the hub closed its offline watches; the informers went back to the control plane: ` +
        `${kubeletSince('list').length} LIST, ${kubeletSince('watch').length} WATCH from resourceVersion ${resumedFrom.join(', ')}`,
      'upstream',
    );
    await this.#until('change arrives', `pod ${change.newPod} to reach the informer`, () =>
      kubelet.podNames().includes(change.newPod),
    );
    await this.#until(
      'change arrives',
      `THEME=dark in ${change.configMap} to reach the informer`,
      () => kubelet.configMapData(change.configMap).THEME === 'dark',
    );
    await this.#record(
      'change arrives',
      `informer sees pod ${change.newPod} and ${change.configMap} THEME=dark: ${kubelet.describe()}`,
      'upstream',
    );
    const get = must('online again', await kubelet.get(POD_PATH(change.newPod)));
    await this.#record(
      'online again',
      `pod ${change.newPod}: 200, resourceVersion ${get.resourceVersion}`,
      sourceOf('online again', get.answer, 'upstream'),
    );
    check('online again', kubelet.errors.length === 0, kubelet.errors.join('; '));
    const bound = podsOn(api, DEMO_NODE);
    const expected = [...NODE_PODS, change.newPod].sort();
    check('nothing lost', same(bound, expected), `pods on ${DEMO_NODE}: ${bound.join(', ')}`);
    await this.#record(
      'nothing lost',
      `${DEMO_NODE} still has ${bound.join(', ')}: not one pod of the autonomous node was evicted`,
      'upstream',
    );
  }

  async act6Sandbox(): Promise<void> {
    this.#t.say('Act 6: an untrusted command runs in its own microVM, with its own kernel.');
    const unavailable = sandboxUnavailable();
    if (unavailable !== undefined) {
      await this.#record('untrusted pod', `skipped: ${unavailable}`, '-');
      return;
    }
    const result = must('untrusted pod', await unameInSandbox());
    check(
      'untrusted pod',
      result.guestKernel !== '' && result.guestKernel !== result.hostKernel,
      `the sandbox's kernel "${result.guestKernel}" is the host's`,
    );
    await this.#record(
      'untrusted pod',
      `edgebox sandbox run -- uname -r printed ${result.guestKernel}; the host runs ${result.hostKernel}`,
      '-',
    );
  }

  async run(): Promise<void> {
    try {
      await this.act1Online();
      await this.#pause();
      await this.act2NodesDark();
      await this.#pause();
      const change = await this.act2Offline();
      await this.#pause();
      await this.act3Reboot();
      await this.#pause();
      await this.act4Restore(change);
      await this.#pause();
      await this.act6Sandbox();
    } finally {
      clearInterval(this.#heartbeats);
      clearInterval(this.#controlPlaneHeartbeats);
      await this.#ecm?.stop();
      await this.#kubelet?.stop();
      await this.#hub?.close();
      await this.#api?.close();
      if (this.#dataDir !== undefined) await rm(this.#dataDir, { recursive: true, force: true });
    }
  }
}

/**
 * The EdgeHub story in four acts: online sync; the control plane cut off
 * (reads from the cache, heartbeats acknowledged on the node, other writes
 * refused); a reboot while offline (the hub serves its cache at once); the
 * link restored (offline watches close, the change made meanwhile arrives).
 * Throws DemoFailure at the first step that does not behave.
 */
export function runDemo(opts: DemoOptions): Promise<void> {
  return new DemoRun(opts).run();
}
