import type { JsonObject } from './object-meta.ts';
import type { ResourceTable, ResourceType, SubresourceName } from './resource-types.ts';

/**
 * Discovery documents built from the resource table: /api, /apis,
 * /apis/<group>, /api/v1 and /apis/<group>/<version> (APIResourceList with
 * verbs, scope, kind and short names, which kubectl's RESTMapper needs), and
 * /version. The aggregated (apidiscovery.k8s.io/v2) form is not served:
 * clients that ask for it fall back to these, as against an older server.
 */

export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-edgebox-fake',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2025-01-01T00:00:00Z',
  goVersion: 'go1.23.4',
  compiler: 'gc',
  platform: 'linux/amd64',
};

const RESOURCE_VERBS = [
  'create',
  'delete',
  'deletecollection',
  'get',
  'list',
  'patch',
  'update',
  'watch',
];

const SUBRESOURCES: Record<
  SubresourceName,
  (t: ResourceType) => { kind: string; verbs: string[]; group?: string; version?: string }
> = {
  status: (t) => ({ kind: t.kind, verbs: ['get', 'patch', 'update'] }),
  eviction: () => ({ kind: 'Eviction', verbs: ['create'], group: 'policy', version: 'v1' }),
  binding: () => ({ kind: 'Binding', verbs: ['create'] }),
  token: () => ({
    kind: 'TokenRequest',
    verbs: ['create'],
    group: 'authentication.k8s.io',
    version: 'v1',
  }),
};

export function apiVersions(serverAddress: string): JsonObject {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function groupEntry(name: string, versions: string[]): JsonObject {
  const list = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: list, preferredVersion: list[0] };
}

export function apiGroupList(table: ResourceTable): JsonObject {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: table
      .groups()
      .filter((g) => g.name !== '')
      .map((g) => groupEntry(g.name, g.versions)),
  };
}

export function apiGroup(table: ResourceTable, group: string): JsonObject | undefined {
  const g = table.groups().find((x) => x.name === group && group !== '');
  if (g === undefined) return undefined;
  return { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(g.name, g.versions) };
}

export function apiResourceList(
  table: ResourceTable,
  group: string,
  version: string,
): JsonObject | undefined {
  const types = table.inGroupVersion(group, version);
  if (types.length === 0) return undefined;
  const resources: JsonObject[] = [];
  for (const t of types) {
    const entry: JsonObject = {
      name: t.resource,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: RESOURCE_VERBS,
    };
    if (t.shortNames.length > 0) entry.shortNames = t.shortNames;
    if (t.categories.length > 0) entry.categories = t.categories;
    resources.push(entry);
    for (const sub of t.subresources) {
      const s = SUBRESOURCES[sub](t);
      const subEntry: JsonObject = {
        name: `${t.resource}/${sub}`,
        singularName: '',
        namespaced: t.namespaced,
      };
      if (s.group !== undefined) subEntry.group = s.group;
      if (s.version !== undefined) subEntry.version = s.version;
      subEntry.kind = s.kind;
      subEntry.verbs = s.verbs;
      resources.push(subEntry);
    }
  }
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group === '' ? version : `${group}/${version}`,
    resources,
  };
}
