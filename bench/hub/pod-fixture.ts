/**
 * Pods shaped like those a kubelet runs (two containers, env, mounts, a
 * projected token volume, tolerations, a full status), about 4.6 KB of JSON
 * each once the apiserver double has added its defaults, spread over nodes
 * the way a scheduler would.
 */
export const NODE_COUNT = 100;
const PADDED_ANNOTATION = 800;

export function nodeName(i: number): string {
  return `node-${i}`;
}

export function podNamespace(i: number): string {
  return `ns-${i % 20}`;
}

export function podName(i: number): string {
  return `pod-${String(i).padStart(6, '0')}`;
}

/** Pod number `i`, on node `i % NODE_COUNT` unless `node` says otherwise. */
export function benchPod(i: number, node = nodeName(i % NODE_COUNT), namespace = podNamespace(i)) {
  const app = `app-${i % 50}`;
  const started = '2026-01-01T00:00:00Z';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(i),
      namespace,
      labels: { app, 'pod-template-hash': '7d9f8c6b5d', tier: 'backend' },
      annotations: {
        'kubectl.kubernetes.io/restartedAt': started,
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': '9102',
        // What `kubectl apply` leaves on objects; here it brings the pod to a typical size.
        'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: { name: app, namespace, labels: { app, tier: 'backend' } },
          spec: {
            replicas: 3,
            selector: { matchLabels: { app } },
            template: { metadata: { labels: { app, tier: 'backend' } }, spec: { containers: [] } },
            strategy: {
              type: 'RollingUpdate',
              rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' },
            },
          },
        }).padEnd(PADDED_ANNOTATION, ' '),
      },
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'ReplicaSet',
          name: `${app}-7d9f8c6b5d`,
          uid: '4f7c2b1e-8a6d-4c3b-9e2f-1a0b9c8d7e6f',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: {
      nodeName: node,
      serviceAccountName: 'default',
      containers: ['server', 'sidecar'].map((c) => ({
        name: c,
        image: `registry.example.com/team/${app}-${c}:v1.42.7`,
        args: ['--listen=:8080', '--log-level=info', `--config=/etc/${c}/config.yaml`],
        ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
        env: [
          { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
          { name: 'GOMAXPROCS', value: '2' },
        ],
        resources: {
          requests: { cpu: '100m', memory: '128Mi' },
          limits: { cpu: '500m', memory: '256Mi' },
        },
        volumeMounts: [
          { name: 'config', mountPath: `/etc/${c}`, readOnly: true },
          {
            name: 'kube-api-access',
            mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
            readOnly: true,
          },
        ],
        readinessProbe: {
          httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP' },
          periodSeconds: 10,
          timeoutSeconds: 1,
          successThreshold: 1,
          failureThreshold: 3,
        },
      })),
      volumes: [
        { name: 'config', configMap: { name: `${app}-config`, defaultMode: 420 } },
        {
          name: 'kube-api-access',
          projected: {
            defaultMode: 420,
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              {
                configMap: {
                  name: 'kube-root-ca.crt',
                  items: [{ key: 'ca.crt', path: 'ca.crt' }],
                },
              },
              {
                downwardAPI: {
                  items: [
                    {
                      path: 'namespace',
                      fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' },
                    },
                  ],
                },
              },
            ],
          },
        },
      ],
    },
    status: {
      phase: 'Running',
      hostIP: `10.0.${i % NODE_COUNT}.1`,
      podIP: `10.244.${i % NODE_COUNT}.${(i % 250) + 2}`,
      podIPs: [{ ip: `10.244.${i % NODE_COUNT}.${(i % 250) + 2}` }],
      startTime: started,
      qosClass: 'Burstable',
      conditions: [
        'PodReadyToStartContainers',
        'Initialized',
        'Ready',
        'ContainersReady',
        'PodScheduled',
      ].map((type) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: started })),
      containerStatuses: ['server', 'sidecar'].map((c) => ({
        name: c,
        ready: true,
        started: true,
        restartCount: 0,
        image: `registry.example.com/team/${app}-${c}:v1.42.7`,
        imageID: `registry.example.com/team/${app}-${c}@sha256:${'3f'.repeat(32)}`,
        containerID: `containerd://${'a1'.repeat(32)}`,
        state: { running: { startedAt: started } },
        lastState: {},
      })),
    },
  };
}
