import type { FakeApiServer } from '../../test/apiserver/server.ts';
import { benchPod, podNamespace } from './pod-fixture.ts';

export const KUBELET_UA = 'kubelet/v1.32.0 (linux/amd64) kubernetes/70d3cc9';
export const KUBECTL_UA = 'kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9';
export const KUBELET = { 'User-Agent': KUBELET_UA };

/** The pods the offline LIST figures are about. */
export const CLUSTER_PODS = 10_000;
/** Namespace of the small objects the proxy-overhead LIST reads. */
export const BENCH_NAMESPACE = 'bench';
export const BENCH_CONFIGMAPS = 10;

/**
 * The cluster every hub figure is measured against: 10,000 pods of about
 * 4.6 KB on 100 nodes in 20 namespaces, and 10 ConfigMaps of about 4.6 KB in
 * namespace `bench` for the proxied LIST.
 */
export function seedCluster(api: FakeApiServer): void {
  const namespaces = new Set<string>([BENCH_NAMESPACE]);
  for (let i = 0; i < CLUSTER_PODS; i++) namespaces.add(podNamespace(i));
  for (const name of namespaces) {
    api.store.create('namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  }
  for (let i = 0; i < CLUSTER_PODS; i++) api.store.create('pods', benchPod(i));
  for (let i = 0; i < BENCH_CONFIGMAPS; i++) {
    api.store.create('configmaps', {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `settings-${i}`, namespace: BENCH_NAMESPACE, labels: { app: 'bench' } },
      data: { 'settings.yaml': `# settings ${i}\n${'key: value\n'.repeat(410)}` },
    });
  }
}
