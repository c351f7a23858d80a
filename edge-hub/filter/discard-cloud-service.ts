import type { KubeObject, ResponseFilter } from './response-filter.ts';

/** A LoadBalancer Service annotated so is served by the cloud's balancer only. */
export const CLOUD_ONLY_ANNOTATION = 'edgebox.io/cloud-only';

/**
 * `discardcloudservice`: kube-proxy on an edge node never sees LoadBalancer
 * Services annotated `edgebox.io/cloud-only: "true"`: their backends live in
 * the cloud, and rules for them on the node would send traffic nowhere.
 */
export const discardCloudServiceFilter: ResponseFilter = {
  name: 'discardcloudservice',
  clients: ['kube-proxy'],
  resources: [{ group: '', resource: 'services' }],
  rewrite(object: KubeObject): KubeObject | undefined {
    const spec = (object.spec ?? {}) as Record<string, unknown>;
    const annotations = (object.metadata?.annotations ?? {}) as Record<string, unknown>;
    const cloudOnly = spec.type === 'LoadBalancer' && annotations[CLOUD_ONLY_ANNOTATION] === 'true';
    return cloudOnly ? undefined : object;
  },
};
