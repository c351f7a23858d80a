import type { Logger } from '../../src/log.ts';
import type { HubRequest } from '../hub-request.ts';
import type { Upstream } from '../upstream/upstream.ts';
import type { SharedMetrics, SharedResourceWatchers } from './shared-metrics.ts';
import { SharedResource } from './shared-resource.ts';

/** `services` or `endpointslices.discovery.k8s.io`: a resource, then its group when not core. */
export interface SharedResourceRef {
  resource: string;
  group: string;
}

/** `--shared-resources` entries as the config reads them. */
export function parseSharedResourceRef(text: string): SharedResourceRef {
  const dot = text.indexOf('.');
  return dot === -1
    ? { resource: text, group: '' }
    : { resource: text.slice(0, dot), group: text.slice(dot + 1) };
}

export interface SharedResourcesDeps {
  shared: readonly SharedResourceRef[];
  targets: () => readonly Upstream[];
  log: Logger;
  /** How long the first request of a resource waits for its shared LIST. */
  syncWaitMs: number;
  backoffMs?: number;
  metrics?: SharedMetrics;
}

/** The name metrics and `--shared-resources` give a resource: `services`, `endpointslices.discovery.k8s.io`. */
function refName(resource: string, group: string): string {
  return group === '' ? resource : `${resource}.${group}`;
}

/**
 * The node's shared resources (`--shared-resources`): one SharedResource
 * per group/version/resource, started by the first LIST or WATCH a cache
 * agent makes of it, so the version is the one the node's components use
 * and a resource no component reads is never watched.
 */
export class SharedResources {
  readonly #deps: SharedResourcesDeps;
  readonly #running = new Map<string, SharedResource>();
  #closed = false;

  constructor(deps: SharedResourcesDeps) {
    this.#deps = deps;
  }

  /** Is this request's resource shared? (Secrets never are: the config refuses them.) */
  isShared(hubReq: HubRequest): boolean {
    const { info } = hubReq;
    if (!info.isResourceRequest || info.subresource !== '') return false;
    return this.#deps.shared.some((r) => r.resource === info.resource && r.group === info.apiGroup);
  }

  /**
   * The SharedResource of a shared request, started on the first one; with
   * `wait`, waited for until synced (undefined when it did not sync in time).
   */
  async forRequest(hubReq: HubRequest, wait = true): Promise<SharedResource | undefined> {
    if (this.#closed || !this.isShared(hubReq)) return undefined;
    const { apiGroup: group, apiVersion: version, resource } = hubReq.info;
    const key = `${group}/${version}/${resource}`;
    let shared = this.#running.get(key);
    if (shared === undefined) {
      shared = new SharedResource({
        name: { group, version, resource },
        targets: this.#deps.targets,
        log: this.#deps.log,
        ...(this.#deps.metrics === undefined
          ? {}
          : { observer: this.#deps.metrics.observerFor(refName(resource, group)) }),
        ...(this.#deps.backoffMs === undefined ? {} : { backoffMs: this.#deps.backoffMs }),
      });
      this.#running.set(key, shared);
      shared.start();
    }
    if (!wait) return undefined;
    await shared.untilSynced(this.#deps.syncWaitMs);
    return shared.synced ? shared : undefined;
  }

  /** Local watchers per shared resource (versions of one resource counted together). */
  watchers(): SharedResourceWatchers[] {
    const byName = new Map<string, number>();
    for (const s of this.all()) {
      const name = refName(s.name.resource, s.name.group);
      byName.set(name, (byName.get(name) ?? 0) + s.watcherCount);
    }
    return [...byName].map(([resource, watchers]) => ({ resource, watchers }));
  }

  /** Every shared resource, for status and tests. */
  all(): SharedResource[] {
    return [...this.#running.values()];
  }

  /** Ends every local watch served from a shared resource, and the upstream ones. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.all().map((s) => s.stop()));
  }
}
