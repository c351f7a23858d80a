import { expect } from 'vitest';
import { FakeApiServer, type FakeApiServerOptions } from '../apiserver/server.ts';
import {
  call,
  openWatch,
  startTestHub,
  tempDir,
  type Cleanups,
  type WatchEvent,
} from './hub-harness.ts';

/** What the shared-resource tests have in common: the double, a hub sharing Services and EndpointSlices, informers. */

export const COREDNS_UA = 'coredns/v1.9.3 (linux/amd64) kubernetes/a866cbe';
export const SERVICES = '/api/v1/services';
export const SLICES = '/apis/discovery.k8s.io/v1/endpointslices';

export function service(name: string, namespace = 'default') {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
  };
}

export function slice(name: string) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': name } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.244.0.7'] }],
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
  };
}

/** The double and a hub that shares Services and EndpointSlices (its default) for kubelet, kube-proxy and coredns. */
export async function startSharingHub(cleanups: Cleanups, apiOptions: FakeApiServerOptions = {}) {
  const api = new FakeApiServer(apiOptions);
  await api.start();
  const dir = tempDir('hub-shared-');
  cleanups.push(dir.remove, () => api.close());
  const hub = await startTestHub({
    server: [api.url],
    dataDir: dir.path,
    cacheAgents: ['kubelet', 'kube-proxy', 'coredns'],
  });
  cleanups.push(() => hub.close());
  return { api, hub, hubUrl: hub.url };
}

/** A client-go informer's start: LIST at resourceVersion=0, then WATCH from the list's resourceVersion. */
export async function informer(
  cleanups: Cleanups,
  hubUrl: string,
  path: string,
  ua: string,
  query = '',
) {
  const headers = { 'User-Agent': ua };
  const sep = query === '' ? '' : `&${query}`;
  const list = await call(`${hubUrl}${path}?resourceVersion=0${sep}`, { headers });
  expect(list.status).toBe(200);
  const rv = list.json<{ metadata: { resourceVersion: string } }>().metadata.resourceVersion;
  const watch = openWatch(
    `${hubUrl}${path}?watch=true&allowWatchBookmarks=true&resourceVersion=${rv}${sep}`,
    headers,
  );
  cleanups.push(() => {
    watch.close();
  });
  return { list, rv, watch };
}

/** The changes a watcher saw, as `TYPE name`, bookmarks left out. */
export function changes(events: readonly WatchEvent[]): string[] {
  return events
    .filter((e) => e.type !== 'BOOKMARK')
    .map((e) => `${e.type} ${e.object.metadata?.name ?? '?'}`);
}

/** Requests the double answered for `path` with `verb` (list, watch). */
export function upstreamCount(api: FakeApiServer, path: string, verb: string): number {
  return api.requests.filter((r) => r.path === path && r.verb === verb).length;
}
