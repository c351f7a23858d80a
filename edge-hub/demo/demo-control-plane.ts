import { formatMicroTime } from '../../src/kube/meta-time.ts';
import { FakeApiServer } from '../../test/apiserver/server.ts';

function microTime(): string {
  return formatMicroTime(Date.now() * 1000);
}

/** The node the demo's kubelet runs as, and the namespace of its workloads. */
export const DEMO_NODE = 'edge-1';
export const DEMO_NAMESPACE = 'shop';
/**
 * Another node, not autonomous: the ECM evicts its pods when it goes dark (and
 * the kubelet's `spec.nodeName` selector has something to leave out).
 */
export const PLAIN_NODE = 'edge-2';
export const PLAIN_NODE_POD = 'web-9';
/**
 * How long the pods tolerate an unreachable node. kube-apiserver's
 * DefaultTolerationSeconds admission gives 300 s; the demo's pods carry a
 * few seconds so the eviction happens while you watch.
 */
export const DEMO_TOLERATION_SECONDS = 4;
/**
 * The control plane's own node, reachable throughout: with every node of a
 * zone dark, upstream's node lifecycle (and so the ECM) stops evicting
 * altogether, which would hide the difference the demo shows.
 */
export const CONTROL_PLANE_NODE = 'cp-1';
/** The annotation that makes a node autonomous (controllers/README.md). */
const AUTONOMY_ANNOTATION = 'edgebox.io/autonomy';

function node(name: string, autonomous: boolean, labels: Record<string, string> = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', ...labels },
      ...(autonomous ? { annotations: { [AUTONOMY_ANNOTATION]: 'true' } } : {}),
    },
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
      tolerations: ['unreachable', 'not-ready'].map((condition) => ({
        key: `node.kubernetes.io/${condition}`,
        operator: 'Exists',
        effect: 'NoExecute',
        tolerationSeconds: DEMO_TOLERATION_SECONDS,
      })),
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
  store.create('nodes', node(DEMO_NODE, true));
  store.create('nodes', node(PLAIN_NODE, false));
  store.create(
    'nodes',
    node(CONTROL_PLANE_NODE, false, { 'node-role.kubernetes.io/control-plane': '' }),
  );
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
  store.create('pods', pod(PLAIN_NODE_POD, PLAIN_NODE, 'web-config'));
  for (const name of [DEMO_NODE, PLAIN_NODE, CONTROL_PLANE_NODE]) {
    store.create('leases.coordination.k8s.io', {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: 'kube-node-lease' },
      spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: microTime() },
    });
  }
  return api;
}

/** The heartbeat of a node whose kubelet the demo does not run, written straight to the store. */
export function renewNodeLease(api: FakeApiServer, name: string): void {
  const lease = api.store.mustGet(
    'leases.coordination.k8s.io',
    name,
    'kube-node-lease',
  ) as unknown as {
    spec: Record<string, unknown>;
  };
  api.store.update('leases.coordination.k8s.io', {
    ...lease,
    spec: { ...lease.spec, renewTime: microTime() },
  });
}

export interface NodeView {
  /** Tainted node.kubernetes.io/unreachable (NoSchedule at least: no new pods go there). */
  unreachable: boolean;
  /** ...and NoExecute: its pods are evicted at their toleration. */
  evicting: boolean;
  edgeAutonomy: { status: string; reason: string; message: string } | undefined;
}

/** What the control plane says about a node: tainted unreachable, and its EdgeAutonomy condition. */
export function nodeView(api: FakeApiServer, name: string): NodeView {
  const n = api.store.mustGet('nodes', name) as {
    spec?: { taints?: { key: string; effect: string }[] };
    status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
  };
  const condition = n.status?.conditions?.find((c) => c.type === 'EdgeAutonomy');
  const unreachable = (n.spec?.taints ?? []).filter(
    (t) => t.key === 'node.kubernetes.io/unreachable',
  );
  return {
    unreachable: unreachable.length > 0,
    evicting: unreachable.some((t) => t.effect === 'NoExecute'),
    edgeAutonomy: condition && {
      status: condition.status,
      reason: condition.reason ?? '',
      message: condition.message ?? '',
    },
  };
}

/** The names of the pods bound to a node and not being deleted (an eviction sets deletionTimestamp). */
export function podsOn(api: FakeApiServer, nodeName: string): string[] {
  return api.store
    .list('pods', { fieldSelector: `spec.nodeName=${nodeName}` })
    .map((p) => (p as { metadata: { name: string; deletionTimestamp?: string } }).metadata)
    .filter((meta) => meta.deletionTimestamp === undefined)
    .map((meta) => meta.name)
    .sort();
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
