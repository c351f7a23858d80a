/**
 * The resource table: every REST resource the double serves is one row of
 * data. Behaviour that differs per kind (defaulting, validation) lives in
 * resource-strategies.ts, keyed by group and kind, so adding a resource here
 * is one line and nothing else in the server names a resource.
 */

/** Subresources the double implements; each has its own handler. */
export type SubresourceName = 'status' | 'eviction' | 'binding' | 'token';

/** How `metadata.name` is validated, as the apiserver's per-kind validators do. */
export type NameRule = 'subdomain' | 'label' | 'dns1035-label' | 'path-segment';

export interface ResourceSpec {
  group: string;
  version: string;
  /** Plural, lower case: the URL segment. */
  resource: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  subresources?: SubresourceName[];
  /** A custom resource: JSON merge and JSON patch only, generation tracked. */
  custom?: boolean;
  /** PUT on a missing object creates it (the apiserver's AllowCreateOnUpdate). */
  allowCreateOnUpdate?: boolean;
  /** DELETE answers with the deleted object rather than a Status. */
  returnDeletedObject?: boolean;
  nameRule?: NameRule;
}

export interface ResourceType {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly kind: string;
  readonly listKind: string;
  readonly singular: string;
  readonly apiVersion: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
  readonly subresources: readonly SubresourceName[];
  readonly custom: boolean;
  readonly allowCreateOnUpdate: boolean;
  readonly returnDeletedObject: boolean;
  /** metadata.generation is set and bumped on spec changes (custom resources). */
  readonly tracksGeneration: boolean;
  readonly nameRule: NameRule;
  /** `pods` or `leases.coordination.k8s.io`: the apiserver's name in messages. */
  readonly qualifiedName: string;
}

export function defineResource(spec: ResourceSpec): ResourceType {
  const custom = spec.custom ?? false;
  return {
    group: spec.group,
    version: spec.version,
    resource: spec.resource,
    kind: spec.kind,
    listKind: `${spec.kind}List`,
    singular: spec.kind.toLowerCase(),
    apiVersion: spec.group === '' ? spec.version : `${spec.group}/${spec.version}`,
    namespaced: spec.namespaced,
    shortNames: spec.shortNames ?? [],
    categories: spec.categories ?? [],
    subresources: spec.subresources ?? [],
    custom,
    allowCreateOnUpdate: spec.allowCreateOnUpdate ?? false,
    returnDeletedObject: spec.returnDeletedObject ?? custom,
    tracksGeneration: custom,
    nameRule: spec.nameRule ?? 'subdomain',
    qualifiedName: spec.group === '' ? spec.resource : `${spec.resource}.${spec.group}`,
  };
}

/** What kubelet, kube-proxy, controllers and kubectl use, as kube-apiserver v1.32 registers them. */
// prettier-ignore
export const BUILTIN_RESOURCES: readonly ResourceSpec[] = [
  { group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false, shortNames: ['ns'], subresources: ['status'], returnDeletedObject: true, nameRule: 'label' },
  { group: '', version: 'v1', resource: 'nodes', kind: 'Node', namespaced: false, shortNames: ['no'], subresources: ['status'] },
  { group: '', version: 'v1', resource: 'pods', kind: 'Pod', namespaced: true, shortNames: ['po'], categories: ['all'], subresources: ['status', 'eviction', 'binding'], returnDeletedObject: true },
  { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true, shortNames: ['cm'] },
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', resource: 'services', kind: 'Service', namespaced: true, shortNames: ['svc'], categories: ['all'], subresources: ['status'], allowCreateOnUpdate: true, returnDeletedObject: true, nameRule: 'dns1035-label' },
  { group: '', version: 'v1', resource: 'endpoints', kind: 'Endpoints', namespaced: true, shortNames: ['ep'], allowCreateOnUpdate: true },
  { group: '', version: 'v1', resource: 'events', kind: 'Event', namespaced: true, shortNames: ['ev'], allowCreateOnUpdate: true },
  { group: '', version: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, shortNames: ['sa'], subresources: ['token'] },
  { group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices', kind: 'EndpointSlice', namespaced: true },
  { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', namespaced: true, allowCreateOnUpdate: true },
  { group: 'node.k8s.io', version: 'v1', resource: 'runtimeclasses', kind: 'RuntimeClass', namespaced: false },
  { group: 'storage.k8s.io', version: 'v1', resource: 'csidrivers', kind: 'CSIDriver', namespaced: false },
  { group: 'storage.k8s.io', version: 'v1', resource: 'csinodes', kind: 'CSINode', namespaced: false },
  { group: 'events.k8s.io', version: 'v1', resource: 'events', kind: 'Event', namespaced: true, shortNames: ['ev'], allowCreateOnUpdate: true },
];

/** The custom resource that proves nothing is hard-wired to built-in types. */
export const WIDGET_RESOURCE: ResourceSpec = {
  group: 'example.edgebox.io',
  version: 'v1',
  resource: 'widgets',
  kind: 'Widget',
  namespaced: true,
  shortNames: ['wg'],
  categories: ['all'],
  subresources: ['status'],
  custom: true,
};

/**
 * The set of served resources, looked up the ways requests name them.
 * Registration order is kept: discovery lists groups and resources in it,
 * and a bare plural (`events`) resolves to the first group that serves it.
 */
export class ResourceTable {
  readonly #types: ResourceType[] = [];

  constructor(specs: readonly ResourceSpec[] = []) {
    for (const spec of specs) this.register(spec);
  }

  register(spec: ResourceSpec): ResourceType {
    const type = defineResource(spec);
    const existing = this.lookup(type.group, type.version, type.resource);
    if (existing !== undefined) {
      throw new Error(
        `resource ${type.qualifiedName}/${type.version} is already registered (kind ${existing.kind})`,
      );
    }
    this.#types.push(type);
    return type;
  }

  all(): readonly ResourceType[] {
    return this.#types;
  }

  lookup(group: string, version: string, resource: string): ResourceType | undefined {
    return this.#types.find(
      (t) => t.group === group && t.version === version && t.resource === resource,
    );
  }

  /** `pods`, `leases.coordination.k8s.io` or `events.events.k8s.io`. */
  resolve(name: string): ResourceType {
    const dot = name.indexOf('.');
    const plural = dot === -1 ? name : name.slice(0, dot);
    const group = dot === -1 ? undefined : name.slice(dot + 1);
    const found = this.#types.find(
      (t) => t.resource === plural && (group === undefined || t.group === group),
    );
    if (found === undefined) {
      throw new Error(
        `unknown resource "${name}": served are ${this.#types.map((t) => t.qualifiedName).join(', ')}`,
      );
    }
    return found;
  }

  /** Groups in registration order, each with its versions. */
  groups(): Array<{ name: string; versions: string[] }> {
    const groups: Array<{ name: string; versions: string[] }> = [];
    for (const t of this.#types) {
      let g = groups.find((x) => x.name === t.group);
      if (g === undefined) {
        g = { name: t.group, versions: [] };
        groups.push(g);
      }
      if (!g.versions.includes(t.version)) g.versions.push(t.version);
    }
    return groups;
  }

  inGroupVersion(group: string, version: string): ResourceType[] {
    return this.#types.filter((t) => t.group === group && t.version === version);
  }
}
