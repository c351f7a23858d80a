import { formatMicroTime, formatTime, type Toleration } from '../kube/objects.ts';
import {
  LABEL_REGION,
  LABEL_ZONE,
  NODE_LEASE_NAMESPACE,
  TAINT_NOT_READY,
  TAINT_UNREACHABLE,
} from '../kube/well-known.ts';

/*
 * Builders for nodes, node Leases and pods in the API's JSON form, shared by
 * the simulations (after NodeSchema/PodSchema parsing) and by the tests that
 * create them in the apiserver double.
 */

export type JsonObject = Record<string, unknown>;

export interface NodeOptions {
  zone?: string;
  region?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Time of the Ready heartbeat (ms); the node is Ready when given. */
  readyAt?: number;
}

export function nodeObject(name: string, options: NodeOptions = {}): JsonObject {
  const labels: Record<string, string> = {
    'kubernetes.io/hostname': name,
    'kubernetes.io/os': 'linux',
    'beta.kubernetes.io/os': 'linux',
    'kubernetes.io/arch': 'amd64',
    'beta.kubernetes.io/arch': 'amd64',
    ...options.labels,
  };
  if (options.zone !== undefined) labels[LABEL_ZONE] = options.zone;
  if (options.region !== undefined) labels[LABEL_REGION] = options.region;
  const node: JsonObject = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels,
      ...(options.annotations ? { annotations: options.annotations } : {}),
    },
    spec: {},
  };
  if (options.readyAt !== undefined) node.status = { conditions: readyConditions(options.readyAt) };
  return node;
}

/** The conditions a healthy kubelet posts, heartbeat at `at`. */
export function readyConditions(at: number): JsonObject[] {
  const t = formatTime(at);
  const ok = (type: string, reason: string, message: string): JsonObject => ({
    type,
    status: 'False',
    reason,
    message,
    lastHeartbeatTime: t,
    lastTransitionTime: t,
  });
  return [
    ok('MemoryPressure', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
    ok('DiskPressure', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
    ok('PIDPressure', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
    {
      type: 'Ready',
      status: 'True',
      reason: 'KubeletReady',
      message: 'kubelet is posting ready status',
      lastHeartbeatTime: t,
      lastTransitionTime: t,
    },
  ];
}

export function leaseObject(nodeName: string, renewAt: number): JsonObject {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: nodeName, namespace: NODE_LEASE_NAMESPACE },
    spec: {
      holderIdentity: nodeName,
      leaseDurationSeconds: 40,
      renewTime: formatMicroTime(renewAt),
    },
  };
}

export interface PodOptions {
  namespace?: string;
  /** Seconds for the not-ready/unreachable NoExecute tolerations; null = tolerate forever. */
  tolerationSeconds?: number | null;
  /** Replaces the default tolerations altogether. */
  tolerations?: Toleration[];
  ownerKind?: string;
  annotations?: Record<string, string>;
}

export function nodeProblemTolerations(seconds: number | null): Toleration[] {
  return [TAINT_NOT_READY, TAINT_UNREACHABLE].map((key) => ({
    key,
    operator: 'Exists',
    effect: 'NoExecute',
    ...(seconds === null ? {} : { tolerationSeconds: seconds }),
  }));
}

export function podObject(name: string, nodeName: string, options: PodOptions = {}): JsonObject {
  const tolerations =
    options.tolerations ??
    (options.tolerationSeconds === undefined
      ? undefined
      : nodeProblemTolerations(options.tolerationSeconds));
  const metadata: JsonObject = { name, namespace: options.namespace ?? 'default' };
  if (options.annotations !== undefined) metadata.annotations = options.annotations;
  if (options.ownerKind !== undefined) {
    metadata.ownerReferences = [
      {
        apiVersion: options.ownerKind === 'DaemonSet' ? 'apps/v1' : 'v1',
        kind: options.ownerKind,
        name: `${name}-owner`,
        uid: `uid-${name}-owner`,
        controller: true,
      },
    ];
  }
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata,
    spec: {
      nodeName,
      containers: [{ name: 'app', image: 'registry.example/app:1' }],
      ...(tolerations === undefined ? {} : { tolerations }),
    },
  };
}

/** The status of a running, Ready pod (for updateStatus after create). */
export function runningPodStatus(at: number): JsonObject {
  const t = formatTime(at);
  return {
    phase: 'Running',
    conditions: [
      { type: 'Initialized', status: 'True', lastTransitionTime: t },
      { type: 'Ready', status: 'True', lastTransitionTime: t },
      { type: 'ContainersReady', status: 'True', lastTransitionTime: t },
      { type: 'PodScheduled', status: 'True', lastTransitionTime: t },
    ],
  };
}
