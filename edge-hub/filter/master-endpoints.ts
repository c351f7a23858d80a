import type { HostPort } from '../config.ts';
import { withHubPort } from './master-service.ts';
import type { KubeObject, ResponseFilter } from './response-filter.ts';

/** The label an EndpointSlice names its Service with. */
const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/**
 * `masterendpoints`: kube-proxy routes the `default/kubernetes` Service's
 * cluster IP to the endpoints of its EndpointSlices. On an edge node that
 * must be the hub (`--hub-service-address`), not the control plane's
 * addresses the node may not reach.
 */
export function masterEndpointsFilter(hub: HostPort): ResponseFilter {
  return {
    name: 'masterendpoints',
    clients: ['kube-proxy'],
    resources: [{ group: 'discovery.k8s.io', resource: 'endpointslices' }],
    rewrite(object: KubeObject): KubeObject {
      const labels = (object.metadata?.labels ?? {}) as Record<string, unknown>;
      if (object.metadata?.namespace !== 'default' || labels[SERVICE_NAME_LABEL] !== 'kubernetes') {
        return object;
      }
      return {
        ...object,
        addressType: hub.host.includes(':') ? 'IPv6' : 'IPv4',
        endpoints: [{ addresses: [hub.host], conditions: { ready: true } }],
        ports: withHubPort(object.ports, hub),
      };
    },
  };
}
