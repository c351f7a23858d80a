import { FakeApiServer } from '../../test/apiserver/server.ts';

/** The node the demo's kubelet runs as, and the namespace of its workloads. */
export const DEMO_NODE = 'edge-1';
export const DEMO_NAMESPACE = 'shop';
/** Another node, so the kubelet's `spec.nodeName` selector has something to leave out. */
const OTHER_NODE = 'edge-2';

function node(name: string) {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux' } },
    status: {
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'KubeletReady',
          message: 'kubelet is posting ready status',
          lastHeartbeatTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        },
      ],
    },
  };
}

function pod(name: string, nodeName: string, configMap: string, secret?: string) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: DEMO_NAMESPACE, labels: { app: name.replace(/-\d+$/, '') } },
    spec: {
      nodeName,
      containers: [
        {
          name: 'main',
          image: 'registry.example/shop:1.0',
          envFrom: [
            { configMapRef: { name: configMap } },
            ...(secret === undefined ? [] : [{ secretRef: { name: secret } }]),
          ],
        },
      ],
    },
  };
}

function configMap(name: string, data: Record<string, string>) {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: DEMO_NAMESPACE },
    data,
  };
}

/**
 * The local control plane: the kube-apiserver double on plain HTTP, seeded
 * as a small cluster would be: two nodes, pods scheduled on them, the
 * ConfigMaps and Secret those pods use, and the demo node's Lease.
 */
export async function startDemoControlPlane(): Promise<FakeApiServer> {
  const api = new FakeApiServer();
  await api.start();
  const store = api.store;
  store.create('nodes', node(DEMO_NODE));
  store.create('nodes', node(OTHER_NODE));
  store.create('namespaces', {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: DEMO_NAMESPACE },
  });
  store.create('configmaps', configMap('web-config', { GREETING: 'hello', THEME: 'light' }));
  store.create('configmaps', configMap('db-config', { MAX_CONNECTIONS: '20' }));
  store.create('secrets', {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'db-credentials', namespace: DEMO_NAMESPACE },
    type: 'Opaque',
    stringData: { password: 'demo-only' },
  });
  store.create('pods', pod('web-0', DEMO_NODE, 'web-config'));
  store.create('pods', pod('web-1', DEMO_NODE, 'web-config'));
  store.create('pods', pod('db-0', DEMO_NODE, 'db-config', 'db-credentials'));
  store.create('pods', pod('web-9', OTHER_NODE, 'web-config'));
  store.create('leases.coordination.k8s.io', {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: DEMO_NODE, namespace: 'kube-node-lease' },
    spec: { holderIdentity: DEMO_NODE, leaseDurationSeconds: 40 },
  });
  return api;
}

/** What the cluster's operators change while the node is cut off. */
export function changeWhileOffline(api: FakeApiServer): { newPod: string; configMap: string } {
  api.store.create('pods', pod('web-2', DEMO_NODE, 'web-config'));
  const cm = api.store.mustGet('configmaps', 'web-config', DEMO_NAMESPACE) as {
    data?: Record<string, string>;
  };
  api.store.update('configmaps', { ...cm, data: { ...cm.data, THEME: 'dark' } });
  return { newPod: 'web-2', configMap: 'web-config' };
}
