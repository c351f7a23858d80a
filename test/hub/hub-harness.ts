import { afterEach } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CoreV1Api,
  KubeConfig,
  ServerConfiguration,
  createConfiguration,
  setHeaderMiddleware,
} from '@kubernetes/client-node';
import { createLogger, silentLogger, type Logger } from '../../src/log.ts';
import { FakeApiServer } from '../apiserver/server.ts';
import { hubConfigSchema, type HubConfig } from '../../edge-hub/config.ts';
import { startHub, type RunningHub } from '../../edge-hub/hub.ts';

// Moved to test/support so the benchmarks share it; the hub tests import it from here.
export { call, type Reply } from '../support/http-call.ts';

/** User-Agents as the real components send them. */
export const KUBELET_UA = 'kubelet/v1.25.0 (linux/amd64) kubernetes/a866cbe';
export const KUBE_PROXY_UA = 'kube-proxy/v1.25.0 (linux/amd64) kubernetes/a866cbe';
export const KUBECTL_UA = 'kubectl/v1.25.0 (linux/amd64) kubernetes/a866cbe';
export const NODE = 'edge-1';

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** EDGEBOX_TEST_LOG=debug shows the hub's log while debugging a test. */
function testLogger(): Logger {
  const level = process.env.EDGEBOX_TEST_LOG;
  return level === undefined ? silentLogger() : createLogger({ name: 'hub-test', level });
}

export interface TestHubOptions {
  server?: string[];
  upstreamKubeconfig?: string;
  dataDir: string;
  cacheAgents?: string[];
  healthInterval?: string;
  healthTimeout?: string;
  healthFailureThreshold?: number;
  healthSuccessThreshold?: number;
  hubServiceAddress?: string;
  disableFilters?: string[];
  sharedResources?: string[];
}

/** A hub on free loopback ports with fast health checks. */
export function startTestHub(opts: TestHubOptions): Promise<RunningHub> {
  const config: HubConfig = hubConfigSchema.parse({
    server: opts.server ?? [],
    upstreamKubeconfig: opts.upstreamKubeconfig,
    listen: '127.0.0.1:0',
    metricsListen: '127.0.0.1:0',
    dataDir: opts.dataDir,
    nodeName: NODE,
    cacheAgents: opts.cacheAgents ?? ['kubelet'],
    healthInterval: opts.healthInterval ?? '200ms',
    healthTimeout: opts.healthTimeout ?? '1s',
    healthFailureThreshold: opts.healthFailureThreshold ?? 2,
    healthSuccessThreshold: opts.healthSuccessThreshold ?? 1,
    hubServiceAddress: opts.hubServiceAddress,
    disableFilters: opts.disableFilters,
    sharedResources: opts.sharedResources,
    logLevel: 'silent',
  });
  return startHub(config, { log: testLogger() });
}

/** What a test tears down after itself, newest first. */
export type Cleanups = Array<() => Promise<void> | void>;

/** A file's cleanups, run newest first after each of its tests. */
export function cleanupsAfterEach(): Cleanups {
  const cleanups: Cleanups = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return cleanups;
}

/**
 * The API double on a free port and a hub in front of it (default options
 * but `cacheAgents`), both stopped and their data removed by `cleanups`.
 */
export async function startApiAndHub(
  cleanups: Cleanups,
  opts: { cacheAgents?: string[] } = {},
): Promise<{ api: FakeApiServer; hub: RunningHub }> {
  const api = new FakeApiServer();
  await api.start();
  const dir = tempDir('hub-e2e-');
  cleanups.push(dir.remove, () => api.close());
  const hub = await startTestHub({ server: [api.url], dataDir: dir.path, ...opts });
  cleanups.push(() => hub.close());
  return { api, hub };
}

/** Where kubelet keeps its node Lease. */
export const NODE_LEASES = '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases';

/** metav1.MicroTime, as kubelet writes a Lease's renewTime. */
export function microTime(): string {
  return new Date().toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface LeaseObject {
  metadata: { name: string; namespace: string; resourceVersion: string };
  spec: Record<string, unknown>;
}

/** The Lease kubelet creates for its node at start-up. */
export function nodeLease(): unknown {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: NODE, namespace: 'kube-node-lease' },
    spec: { holderIdentity: NODE, leaseDurationSeconds: 40, renewTime: microTime() },
  };
}

/** kubelet's renewal: the Lease it last got back, renewed now, at that Lease's resourceVersion. */
export function renewedLease(lease: LeaseObject): unknown {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name: lease.metadata.name,
      namespace: lease.metadata.namespace,
      resourceVersion: lease.metadata.resourceVersion,
    },
    spec: { ...lease.spec, renewTime: microTime() },
  };
}

/**
 * A client-node KubeConfig that talks to the hub as `userAgent`; client-node
 * lets an authenticator add headers, which is how the User-Agent gets set.
 */
export function hubKubeConfig(hubUrl: string, userAgent: string, token?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    { name: 'hub', server: hubUrl, skipTLSVerify: true },
    token === undefined ? { name: 'node' } : { name: 'node', token },
  );
  kc.addAuthenticator({
    isAuthProvider: () => true,
    applyAuthentication: (_user, opts) => {
      opts.headers = { ...(opts.headers ?? {}), 'User-Agent': userAgent };
      return Promise.resolve();
    },
  });
  return kc;
}

/**
 * The typed core API client, sending `userAgent`: `kc.makeApiClient` adds its
 * own User-Agent after the authenticators, so its lists would come from
 * `kubernetes-client-javascript`, a component the hub does not cache for kubelet.
 */
export function hubCoreApi(hubUrl: string, userAgent: string): CoreV1Api {
  return new CoreV1Api(
    createConfiguration({
      baseServer: new ServerConfiguration(hubUrl, {}),
      authMethods: { default: hubKubeConfig(hubUrl, userAgent) },
      middleware: [setHeaderMiddleware('User-Agent', userAgent)],
    }),
  );
}

export interface WatchEvent {
  type: string;
  object: { kind?: string; metadata?: { name?: string; resourceVersion?: string } };
}

/** A raw watch through the hub: events as they come, and how the stream ended. */
export function openWatch(url: string, headers: Record<string, string>) {
  const events: WatchEvent[] = [];
  let response: IncomingMessage | undefined;
  let buffered = '';
  const req = httpRequest(url, {
    headers: { Accept: 'application/json', ...headers },
    agent: false,
  });
  const ended = new Promise<'clean' | 'error'>((resolve) => {
    req.on('error', () => resolve('error'));
    req.on('response', (res) => {
      response = res;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.trim() !== '') events.push(JSON.parse(line) as WatchEvent);
        }
      });
      res.on('error', () => resolve('error'));
      res.on('end', () => resolve('clean'));
    });
  });
  req.end();
  return {
    events,
    ended,
    response: () => response,
    close: () => req.destroy(),
  };
}

/** Waits for a condition, checking on every turn of the event loop and after each timer tick. */
export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
