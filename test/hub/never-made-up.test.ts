import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import type { Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunningHub } from '../../edge-hub/hub.ts';
import { hubStatusReport } from '../../edge-hub/status-command.ts';
import { hubOptionsSchema } from '../../edge-hub/config.ts';
import { FakeApiServer } from '../apiserver/server.ts';
import { KubeletLike, type RunningPod } from '../support/kubelet-like.ts';
import {
  KUBELET_UA,
  NODE,
  call,
  openWatch,
  startTestHub,
  tempDir,
  until,
  cleanupsAfterEach,
} from './hub-harness.ts';

/**
 * The issue a real kubelet found: an EdgeHub that made up offline answers
 * from a cold, partial or stale cache (an empty pod list, a 404 for its
 * Node) made kubelet kill its pods. Each case puts a kubelet-like client
 * (test/support/kubelet-like.ts) in front of the hub and checks it keeps
 * every pod: every read gets the truth or a 503, never an empty list or a
 * 404 upstream would not have given.
 */

const cleanups = cleanupsAfterEach();

const PODS: RunningPod[] = [
  { name: 'p1', namespace: 'edge', configMaps: ['cm1'], secrets: ['s1'] },
  { name: 'p2', namespace: 'edge' },
];

function listening(server: Server | HttpServer): Promise<string> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });
  });
}

async function refusingUrl(): Promise<string> {
  const s = createServer();
  const url = await listening(s);
  await new Promise<void>((r) => s.close(() => r()));
  return url;
}

/** Accepts connections and never answers: a hung apiserver or a half-dead link. */
async function silentUrl(): Promise<string> {
  const sockets = new Set<Socket>();
  const s = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  const url = await listening(s);
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const socket of sockets) socket.destroy();
        s.close(() => r());
      }),
  );
  return url;
}

async function hubWith(
  server: string,
  dataDir: string,
  extra: { healthTimeout?: string; cacheAgents?: string[] } = {},
): Promise<RunningHub> {
  const hub = await startTestHub({ server: [server], dataDir, ...extra });
  cleanups.push(() => hub.close());
  return hub;
}

function freshDir(): string {
  const dir = tempDir('hub-made-up-');
  cleanups.push(dir.remove);
  return join(dir.path, 'hub');
}

/** The API double holding the node, namespace `edge` and the named pods on the node. */
async function edgeCluster(podNames: readonly string[]): Promise<FakeApiServer> {
  const api = new FakeApiServer();
  await api.start();
  cleanups.push(() => api.close());
  api.store.create('nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: NODE } });
  api.store.create('namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'edge' },
  });
  for (const name of podNames) {
    api.store.create('pods', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'edge' },
      spec: { nodeName: NODE, containers: [{ name: 'c', image: 'busybox' }] },
    });
  }
  return api;
}

/** Every read answered 503 and named what is missing; nothing killed, nothing given up. */
function expectKeptEverything(
  kubelet: KubeletLike,
  reads: Awaited<ReturnType<KubeletLike['sync']>>,
) {
  expect(reads.node).toBe(503);
  expect(reads.pods).toBe(503);
  expect(Object.values(reads.volumes).every((s) => s === 503)).toBe(true);
  expect(kubelet.running()).toEqual(['edge/p1', 'edge/p2']);
  expect(kubelet.killed).toEqual([]);
  expect(kubelet.lostVolumes).toEqual([]);
  expect(kubelet.gaveUp).toBeUndefined();
}

function kubectl(args: string[], home: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      'kubectl',
      args,
      { env: { ...process.env, HOME: home, KUBECONFIG: '' }, timeout: 30_000 },
      (err, _stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stderr });
      },
    );
    child.stdin?.end();
  });
}

describe('EdgeHub never makes up an offline answer', () => {
  it('fresh store, upstream refusing: kubelet gets 503s naming what was never cached and keeps its pods; kubectl gets the same clear error', async () => {
    const hub = await hubWith(await refusingUrl(), freshDir(), {
      cacheAgents: ['kubelet', 'kubectl'],
    });
    const kubelet = new KubeletLike(hub.url, NODE, PODS);
    const reads = await kubelet.sync();
    expectKeptEverything(kubelet, reads);
    const pods = await call(`${hub.url}/api/v1/pods?fieldSelector=spec.nodeName%3D${NODE}`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(pods.headers['x-edgebox-source']).toBe('cache');
    expect(pods.json()).toMatchObject({ kind: 'Status', code: 503, reason: 'ServiceUnavailable' });
    expect(pods.json<{ message: string }>().message).toContain(
      `kubelet never listed pods in all namespaces with fieldSelector spec.nodeName=${NODE} online`,
    );
    const home = tempDir('kubectl-home-');
    cleanups.push(home.remove);
    // --raw: kubectl's discovery is not cached, and would fail first.
    const run = await kubectl(['--server', hub.url, 'get', '--raw', '/api/v1/pods'], home.path);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('ServiceUnavailable');
    expect(run.stderr).toContain(
      'kube-apiserver is unreachable and kubectl never listed pods in all namespaces online',
    );
  });

  it('fresh store, upstream that accepts and never answers: kubelet waits, then gets 503s, and keeps its pods', async () => {
    const hub = await hubWith(await silentUrl(), freshDir());
    const kubelet = new KubeletLike(hub.url, NODE, PODS);
    expectKeptEverything(kubelet, await kubelet.sync());
    expect(hub.health.overall()).toBe('down');
  });

  it("fresh store, upstream slower than the boot window: kubelet gets upstream's truth, not the empty cache", async () => {
    const api = await edgeCluster(PODS.map((p) => p.name));
    api.store.create('configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cm1', namespace: 'edge' },
    });
    api.store.create('secrets', {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's1', namespace: 'edge' },
    });
    // A loaded apiserver: every answer, its /readyz too, comes after three boot windows.
    api.faults.latencyMs = 900;
    const hub = await hubWith(api.url, freshDir(), { healthTimeout: '5s' });
    expect(hub.health.overall()).toBe('unknown');
    const kubelet = new KubeletLike(hub.url, NODE, PODS);
    const reads = await kubelet.sync();
    expect(reads).toEqual({
      node: 200,
      pods: 200,
      volumes: { 'configmap/cm1': 200, 'secret/s1': 200 },
    });
    expect(kubelet.running()).toEqual(['edge/p1', 'edge/p2']);
    expect(kubelet.killed).toEqual([]);
  });

  it('corrupt store moved aside, upstream down: 503s that say the cache was lost, /readyz and hub status say so too', async () => {
    const dataDir = freshDir();
    await mkdir(dataDir, { recursive: true });
    await writeFile(join(dataDir, 'CURRENT'), 'MANIFEST-000099\n');
    await writeFile(join(dataDir, 'MANIFEST-000099'), 'this is not a manifest');
    const hub = await hubWith(await refusingUrl(), dataDir);
    const kubelet = new KubeletLike(hub.url, NODE, PODS);
    expectKeptEverything(kubelet, await kubelet.sync());
    const pods = await call(`${hub.url}/api/v1/pods?fieldSelector=spec.nodeName%3D${NODE}`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(pods.json<{ message: string }>().message).toContain("the node's cache was lost");
    await until(() => hub.health.overall() === 'down', 'upstream down');
    const readyz = await call(`${hub.url}/readyz`);
    expect(readyz.status).toBe(503);
    expect(readyz.body).toContain("the node's cache was lost");
    expect(readyz.body).toContain(`${dataDir}.corrupt-`);
    const report = await hubStatusReport(
      hubOptionsSchema.parse({ listen: hub.url.replace('http://', ''), dataDir }),
    );
    expect(report).toContain('CACHE LOST');
    expect(report).toContain(`${dataDir}.corrupt-`);
  });
});

describe('EdgeHub offline answers are as of the scope asked for', () => {
  async function cluster() {
    const api = await edgeCluster(['p1', 'p2', 'p3']);
    const hub = await hubWith(api.url, freshDir());
    await until(() => hub.health.overall() === 'up', 'upstream up');
    return { api, hub };
  }

  async function cut(api: FakeApiServer, hub: RunningHub): Promise<void> {
    await api.stop();
    await until(() => hub.health.overall() === 'down', 'upstream down');
  }

  async function restore(api: FakeApiServer, hub: RunningHub): Promise<void> {
    await api.start();
    await until(() => hub.health.overall() === 'up', 'upstream up');
  }

  const kubeletGet = (hub: RunningHub, path: string) =>
    call(`${hub.url}${path}`, { headers: { 'User-Agent': KUBELET_UA } });
  const byNode = `/api/v1/pods?fieldSelector=spec.nodeName%3D${NODE}`;
  const namesOf = (reply: Awaited<ReturnType<typeof kubeletGet>>) =>
    reply
      .json<{ items: Array<{ metadata: { name: string } }> }>()
      .items.map((i) => i.metadata.name);

  it('a pod deleted upstream does not come back from an older snapshot of another scope', async () => {
    const { api, hub } = await cluster();
    expect(namesOf(await kubeletGet(hub, byNode))).toEqual(['p1', 'p2', 'p3']);
    expect(namesOf(await kubeletGet(hub, '/api/v1/namespaces/edge/pods'))).toEqual([
      'p1',
      'p2',
      'p3',
    ]);
    await cut(api, hub);
    await restore(api, hub);
    api.store.delete('pods', 'p2', 'edge', { gracePeriodSeconds: 0 });
    expect(namesOf(await kubeletGet(hub, byNode))).toEqual(['p1', 'p3']);
    await cut(api, hub);
    const offline = await kubeletGet(hub, byNode);
    expect(offline.headers['x-edgebox-source']).toBe('cache');
    expect(offline.headers.warning).toBeUndefined();
    expect(namesOf(offline)).toEqual(['p1', 'p3']);
    const kubelet = new KubeletLike(hub.url, NODE, [
      { name: 'p1', namespace: 'edge' },
      { name: 'p3', namespace: 'edge' },
    ]);
    const reads = await kubelet.sync();
    expect(reads.pods).toBe(200);
    expect(kubelet.killed).toEqual([]);
  });

  it('a watch-list replaces its scope: after a delete upstream and a second watch-list, offline reads are the truth or a 503', async () => {
    const { api, hub } = await cluster();
    const watchList = async (): Promise<void> => {
      const w = openWatch(
        `${hub.url}${byNode}&watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true`,
        { 'User-Agent': KUBELET_UA },
      );
      await until(
        () =>
          w.events.some(
            (e) =>
              e.type === 'BOOKMARK' &&
              (e.object.metadata as { annotations?: Record<string, string> } | undefined)
                ?.annotations?.['k8s.io/initial-events-end'] === 'true',
          ),
        'the initial-events-end bookmark',
      );
      w.close();
    };
    await watchList();
    // kubelet's other start-up reads, online: its Node.
    expect((await kubeletGet(hub, `/api/v1/nodes/${NODE}`)).status).toBe(200);
    api.store.delete('pods', 'p2', 'edge', { gracePeriodSeconds: 0 });
    await watchList();
    await cut(api, hub);
    const kubelet = new KubeletLike(hub.url, NODE, [
      { name: 'p1', namespace: 'edge', configMaps: ['never-read'] },
      { name: 'p2', namespace: 'edge' },
      { name: 'p3', namespace: 'edge' },
    ]);
    const reads = await kubelet.sync();
    expect(reads).toEqual({ node: 200, pods: 200, volumes: { 'configmap/never-read': 503 } });
    // p2 is gone upstream: the truth kills it, and only it.
    expect(kubelet.killed).toEqual(['edge/p2']);
    expect(kubelet.running()).toEqual(['edge/p1', 'edge/p3']);
    expect(kubelet.gaveUp).toBeUndefined();
    expect((await kubeletGet(hub, '/api/v1/namespaces/edge/pods/p2')).status).toBe(404);
    expect((await kubeletGet(hub, '/api/v1/namespaces/edge/pods/p1')).status).toBe(200);
  });
});
