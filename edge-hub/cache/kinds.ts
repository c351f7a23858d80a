import type { ResourceRef } from './keys.ts';

/**
 * Kinds of the resources node components read. Offline, a list of a resource
 * the cache never saw a response for still needs `kind: <Kind>List`; anything
 * not here falls back to a kind recorded from any component, then to a guess.
 */
const KNOWN_KINDS: Readonly<Record<string, string>> = {
  pods: 'Pod',
  nodes: 'Node',
  services: 'Service',
  endpoints: 'Endpoints',
  configmaps: 'ConfigMap',
  secrets: 'Secret',
  namespaces: 'Namespace',
  serviceaccounts: 'ServiceAccount',
  persistentvolumes: 'PersistentVolume',
  persistentvolumeclaims: 'PersistentVolumeClaim',
  events: 'Event',
  limitranges: 'LimitRange',
  resourcequotas: 'ResourceQuota',
  leases: 'Lease',
  endpointslices: 'EndpointSlice',
  runtimeclasses: 'RuntimeClass',
  csidrivers: 'CSIDriver',
  csinodes: 'CSINode',
  csistoragecapacities: 'CSIStorageCapacity',
  storageclasses: 'StorageClass',
  volumeattachments: 'VolumeAttachment',
  ingresses: 'Ingress',
  ingressclasses: 'IngressClass',
  networkpolicies: 'NetworkPolicy',
  deployments: 'Deployment',
  daemonsets: 'DaemonSet',
  replicasets: 'ReplicaSet',
  statefulsets: 'StatefulSet',
  controllerrevisions: 'ControllerRevision',
  jobs: 'Job',
  cronjobs: 'CronJob',
  priorityclasses: 'PriorityClass',
  poddisruptionbudgets: 'PodDisruptionBudget',
  customresourcedefinitions: 'CustomResourceDefinition',
  clusterroles: 'ClusterRole',
  clusterrolebindings: 'ClusterRoleBinding',
  roles: 'Role',
  rolebindings: 'RoleBinding',
};

export function builtinKind(ref: ResourceRef): string | undefined {
  return KNOWN_KINDS[ref.resource];
}

/** `widgets` -> `Widget`: only used when nothing better is known. */
export function guessKind(ref: ResourceRef): string {
  const plural = ref.resource;
  let singular = plural;
  if (plural.endsWith('ies')) singular = `${plural.slice(0, -3)}y`;
  else if (plural.endsWith('sses')) singular = plural.slice(0, -2);
  else if (plural.endsWith('s')) singular = plural.slice(0, -1);
  return singular.charAt(0).toUpperCase() + singular.slice(1);
}
