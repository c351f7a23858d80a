import { describe, expect, it } from 'vitest';
import { FakeApiServer } from '../apiserver/server.ts';
import {
  KUBELET_UA,
  KUBE_PROXY_UA,
  call,
  openWatch,
  startTestHub,
  tempDir,
  until,
  cleanupsAfterEach,
} from './hub-harness.ts';

const cleanups = cleanupsAfterEach();

/** Where pods on the node reach the hub. */
const HUB_ADDRESS = { host: '169.254.2.1', port: 10268 };
const SERVICES = '/api/v1/services';
const SLICES = '/apis/discovery.k8s.io/v1/endpointslices';
const KUBERNETES_SVC = '/api/v1/namespaces/default/services/kubernetes';
const CLOUD_LB_SVC = '/api/v1/namespaces/default/services/cloud-lb';

interface Svc {
  metadata: { name: string };
  spec: { clusterIP: string; ports: Array<{ name: string; port: number }> };
}
interface Slice {
  metadata: { name: string };
  endpoints: Array<{ addresses: string[] }>;
  ports: Array<{ name: string; port: number }>;
}

function service(name: string, spec: Record<string, unknown>, annotations = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', annotations },
    spec: { ports: [{ name: 'https', port: 443, protocol: 'TCP' }], ...spec },
  };
}

const CLOUD_ONLY = { 'edgebox.io/cloud-only': 'true' };

function seed(api: FakeApiServer): void {
  // The double keeps `default/kubernetes` itself (cluster IP 10.96.0.1, port https 443).
  api.store.create('services', service('web', { clusterIP: '10.96.0.20' }));
  api.store.create(
    'services',
    service('cloud-lb', { clusterIP: '10.96.0.30', type: 'LoadBalancer' }, CLOUD_ONLY),
  );
  api.store.create('endpointslices', {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: 'kubernetes',
      namespace: 'default',
      labels: { 'kubernetes.io/service-name': 'kubernetes' },
    },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true } }],
    ports: [{ name: 'https', port: 6443, protocol: 'TCP' }],
  });
}

async function hubWith(disableFilters?: string[]) {
  const api = new FakeApiServer();
  await api.start();
  seed(api);
  const d = tempDir('hub-filters-');
  const hub = await startTestHub({
    server: [api.url],
    dataDir: d.path,
    cacheAgents: ['kubelet', 'kube-proxy'],
    hubServiceAddress: `${HUB_ADDRESS.host}:${HUB_ADDRESS.port}`,
    ...(disableFilters === undefined ? {} : { disableFilters }),
  });
  cleanups.push(
    d.remove,
    () => api.close(),
    () => hub.close(),
  );
  await until(() => hub.health.overall() === 'up', 'upstream up');
  return { api, hub };
}

const kubelet = { 'User-Agent': KUBELET_UA };
const kubeProxy = { 'User-Agent': KUBE_PROXY_UA };

/** What kubelet and kube-proxy are shown, read the same way online and offline. */
async function whatClientsSee(hubUrl: string) {
  const get = await call(`${hubUrl}${KUBERNETES_SVC}`, { headers: kubelet });
  const kubeletList = await call(`${hubUrl}${SERVICES}`, { headers: kubelet });
  const proxyList = await call(`${hubUrl}${SERVICES}`, { headers: kubeProxy });
  const proxyKubernetes = await call(`${hubUrl}${KUBERNETES_SVC}`, { headers: kubeProxy });
  const proxyCloudLb = await call(`${hubUrl}${CLOUD_LB_SVC}`, { headers: kubeProxy });
  const slices = await call(`${hubUrl}${SLICES}`, { headers: kubeProxy });
  // As client-go's informers list (any version will do): online from the node's shared watch.
  const proxyInformerList = await call(`${hubUrl}${SERVICES}?resourceVersion=0`, {
    headers: kubeProxy,
  });
  const informerSlices = await call(`${hubUrl}${SLICES}?resourceVersion=0`, { headers: kubeProxy });
  const byName = <T extends { metadata: { name: string } }>(items: T[], name: string) =>
    items.find((i) => i.metadata.name === name);
  const kubeletItems = kubeletList.json<{ items: Svc[] }>().items;
  const proxyItems = proxyList.json<{ items: Svc[] }>().items;
  const slice = byName(slices.json<{ items: Slice[] }>().items, 'kubernetes');
  const informerSlice = byName(informerSlices.json<{ items: Slice[] }>().items, 'kubernetes');
  const addressesOf = (s: Slice | undefined) => ({
    addresses: s?.endpoints.flatMap((e) => e.addresses),
    ports: s?.ports,
  });
  return {
    sources: [
      ...new Set(
        [
          get,
          kubeletList,
          proxyList,
          proxyKubernetes,
          proxyCloudLb,
          slices,
          proxyInformerList,
          informerSlices,
        ].map((r) => r.headers['x-edgebox-source']),
      ),
    ],
    kubeletGet: get.json<Svc>().spec,
    kubeletListed: byName(kubeletItems, 'kubernetes')?.spec,
    kubeletNames: kubeletItems.map((i) => i.metadata.name).sort(),
    proxyNames: proxyItems.map((i) => i.metadata.name).sort(),
    proxyKubernetesIp: proxyKubernetes.json<Svc>().spec.clusterIP,
    proxyCloudLbStatus: proxyCloudLb.status,
    slice: addressesOf(slice),
    proxyInformerNames: proxyInformerList
      .json<{ items: Svc[] }>()
      .items.map((i) => i.metadata.name)
      .sort(),
    informerSlice: addressesOf(informerSlice),
  };
}

const FILTERED = {
  kubeletGet: expect.objectContaining({
    clusterIP: HUB_ADDRESS.host,
    ports: [expect.objectContaining({ name: 'https', port: HUB_ADDRESS.port })],
  }) as unknown,
  kubeletListed: expect.objectContaining({ clusterIP: HUB_ADDRESS.host }) as unknown,
  // kubelet sees every Service (discardcloudservice is kube-proxy's).
  kubeletNames: ['cloud-lb', 'kubernetes', 'web'],
  proxyNames: ['kubernetes', 'web'],
  // kube-proxy keeps the cluster IP; its EndpointSlice leads to the hub.
  proxyKubernetesIp: '10.96.0.1',
  proxyCloudLbStatus: 404,
  slice: {
    addresses: [HUB_ADDRESS.host],
    ports: [expect.objectContaining({ name: 'https', port: HUB_ADDRESS.port })],
  },
  proxyInformerNames: ['kubernetes', 'web'],
  informerSlice: {
    addresses: [HUB_ADDRESS.host],
    ports: [expect.objectContaining({ name: 'https', port: HUB_ADDRESS.port })],
  },
};

describe('response filters', () => {
  it('rewrite GET, LIST and WATCH answers alike online and offline', async () => {
    const { api, hub } = await hubWith();
    // Online, reads come from upstream or from the node's shared watch (X-Edgebox-Source
    // upstream or cache): what matters is what each client is shown.
    expect(await whatClientsSee(hub.url)).toMatchObject(FILTERED);

    // Online WATCH: a cloud-only Service never shows; one that becomes cloud-only is DELETED.
    const list = await call(`${hub.url}${SERVICES}`, { headers: kubeProxy });
    const rv = list.json<{ metadata: { resourceVersion: string } }>().metadata.resourceVersion;
    const w = openWatch(`${hub.url}${SERVICES}?watch=1&resourceVersion=${rv}`, kubeProxy);
    cleanups.push(() => {
      w.close();
    });
    await until(() => w.response() !== undefined, 'the watch to open');
    api.store.create(
      'services',
      service('cloud-2', { clusterIP: '10.96.0.40', type: 'LoadBalancer' }, CLOUD_ONLY),
    );
    api.store.create('services', service('web-2', { clusterIP: '10.96.0.50' }));
    api.store.patch('services', 'web', 'default', 'merge', {
      metadata: { annotations: CLOUD_ONLY },
      spec: { type: 'LoadBalancer' },
    });
    api.store.patch('services', 'kubernetes', 'default', 'merge', {
      metadata: { labels: { touched: 'yes' } },
    });
    await until(() => w.events.length >= 3, 'three watch events');
    expect(w.events.map((e) => [e.type, e.object.metadata?.name])).toEqual([
      ['ADDED', 'web-2'],
      ['DELETED', 'web'],
      ['MODIFIED', 'kubernetes'],
    ]);
    w.close();
    // kubelet's watch of the kubernetes Service is rewritten too.
    const kw = openWatch(`${hub.url}${SERVICES}?watch=1&resourceVersion=${rv}`, kubelet);
    cleanups.push(() => {
      kw.close();
    });
    await until(() => kw.events.some((e) => e.object.metadata?.name === 'kubernetes'), 'event');
    const kev = kw.events.find((e) => e.object.metadata?.name === 'kubernetes');
    expect((kev?.object as unknown as Svc).spec.clusterIP).toBe(HUB_ADDRESS.host);
    kw.close();
    // Restore what the offline reads below expect, and let the cache record it.
    api.store.delete('services', 'cloud-2', 'default');
    api.store.delete('services', 'web-2', 'default');
    api.store.patch('services', 'web', 'default', 'merge', {
      metadata: { annotations: { 'edgebox.io/cloud-only': null } },
      spec: { type: 'ClusterIP' },
    });
    // Lists at any version (resourceVersion=0) may trail upstream a moment, as the apiserver's
    // watch cache may: wait until the node's shared copy has the restored state too.
    await until(
      async () => (await whatClientsSee(hub.url)).proxyInformerNames.join() === 'kubernetes,web',
      'the shared copy to catch up',
    );
    await hub.remote.drain();

    await api.stop();
    await until(() => hub.health.overall() === 'down', 'upstream down');
    const offline = await whatClientsSee(hub.url);
    expect(offline).toMatchObject({ ...FILTERED, sources: ['cache'] });

    // Offline WATCH replays what the filters leave, rewritten.
    const ow = openWatch(`${hub.url}${SERVICES}?watch=1&timeoutSeconds=1`, kubeProxy);
    expect(await ow.ended).toBe('clean');
    expect(ow.events.map((e) => [e.type, e.object.metadata?.name])).toEqual([
      ['ADDED', 'kubernetes'],
      ['ADDED', 'web'],
    ]);
    const okw = openWatch(`${hub.url}${SERVICES}?watch=1&timeoutSeconds=1`, kubelet);
    expect(await okw.ended).toBe('clean');
    const okev = okw.events.find((e) => e.object.metadata?.name === 'kubernetes');
    expect((okev?.object as unknown as Svc).spec.clusterIP).toBe(HUB_ADDRESS.host);
  });

  it('are off when disabled by name, online and offline', async () => {
    const { api, hub } = await hubWith(['masterservice', 'masterendpoints', 'discardcloudservice']);
    const unfiltered = {
      kubeletGet: expect.objectContaining({ clusterIP: '10.96.0.1' }) as unknown,
      proxyNames: ['cloud-lb', 'kubernetes', 'web'],
      proxyCloudLbStatus: 200,
      slice: { addresses: ['10.0.0.1'] },
    };
    expect(await whatClientsSee(hub.url)).toMatchObject(unfiltered);
    await hub.remote.drain();
    await api.stop();
    await until(() => hub.health.overall() === 'down', 'upstream down');
    expect(await whatClientsSee(hub.url)).toMatchObject({ ...unfiltered, sources: ['cache'] });
  });
});
