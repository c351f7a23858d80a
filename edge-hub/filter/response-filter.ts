import type { RequestInfo } from '../../src/kube/request-info.ts';

/** A Kubernetes object as filters read it: plain JSON. */
export type KubeObject = Record<string, unknown> & {
  metadata?: { name?: string; namespace?: string; [key: string]: unknown };
};

/**
 * One rewrite of what a node component is told, applied to every object of
 * a resource it reads (GET, each LIST item, each WATCH event's object),
 * online and offline alike. One small file per filter; all of them are
 * listed in `filters.ts`.
 */
export interface ResponseFilter {
  /** What `--disable-filters` names. */
  readonly name: string;
  /** Components it applies to (client identities, e.g. 'kube-proxy'). */
  readonly clients: readonly string[];
  /** Resources it applies to: API group ('' for core) and plural resource. */
  readonly resources: ReadonlyArray<{ group: string; resource: string }>;
  /** The object as the client should see it; undefined: the client never sees it. */
  rewrite(object: KubeObject): KubeObject | undefined;
}

export function filterApplies(
  filter: ResponseFilter,
  component: string,
  info: RequestInfo,
): boolean {
  return (
    info.subresource === '' &&
    filter.clients.includes(component) &&
    filter.resources.some((r) => r.group === info.apiGroup && r.resource === info.resource)
  );
}
