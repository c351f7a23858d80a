import type { HostPort } from '../config.ts';
import type { KubeObject, ResponseFilter } from './response-filter.ts';

/**
 * `masterservice`: kubelet tells pods where the API is with the
 * `default/kubernetes` Service (KUBERNETES_SERVICE_HOST/PORT). On an edge
 * node pods must reach it through the hub, so kubelet sees that Service at
 * the hub's address (`--hub-service-address`).
 */
export function masterServiceFilter(hub: HostPort): ResponseFilter {
  return {
    name: 'masterservice',
    clients: ['kubelet'],
    resources: [{ group: '', resource: 'services' }],
    rewrite(object: KubeObject): KubeObject {
      if (!isKubernetesService(object)) return object;
      const spec = (object.spec ?? {}) as Record<string, unknown>;
      return {
        ...object,
        spec: {
          ...spec,
          clusterIP: hub.host,
          clusterIPs: [hub.host],
          ports: withHubPort(spec.ports, hub),
        },
      };
    },
  };
}

export function isKubernetesService(object: KubeObject): boolean {
  return object.metadata?.namespace === 'default' && object.metadata.name === 'kubernetes';
}

/** A Service's or EndpointSlice's ports with the API's (`https`) at the hub's port. */
export function withHubPort(ports: unknown, hub: HostPort): Array<Record<string, unknown>> {
  const list = Array.isArray(ports) ? (ports as Array<Record<string, unknown>>) : [];
  return list.map((p) => (p.name === 'https' ? { ...p, port: hub.port } : p));
}
