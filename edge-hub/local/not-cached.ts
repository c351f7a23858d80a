import { qualifiedResource, serviceUnavailable, type KubeStatus } from '../../src/kube/status.ts';
import type { HubRequest } from '../hub-request.ts';
import type { CacheLoss, Uncovered } from '../cache/offline-cache.ts';

/**
 * The 503s for what the cache does not know (cache/cache-knowledge.ts
 * decides). No Retry-After: client-go would retry the same read up to ten
 * times before kubectl printed the error; kubelet's reflectors retry on
 * their own.
 */

function lossSuffix(loss: CacheLoss | undefined): string {
  return loss === undefined
    ? ''
    : ` (the node's cache was lost at ${loss.at}: the store could not be opened and was moved aside to ${loss.movedTo})`;
}

/** The 503 for a list or watch the cache cannot answer exactly. */
export function scopeNotCached(coverage: Uncovered, loss: CacheLoss | undefined): KubeStatus {
  return serviceUnavailable(
    `edgebox: kube-apiserver is unreachable and ${coverage.why}` +
      `${lossSuffix(loss)}; the node does not know them and will not guess`,
  );
}

/** The 503 for a GET of an object the cache neither holds nor knows to be gone. */
export function objectNotCached(req: HubRequest, loss: CacheLoss | undefined): KubeStatus {
  const { namespace, name } = req.info;
  const resource = qualifiedResource({ group: req.info.apiGroup, resource: req.info.resource });
  const where = namespace === '' ? '' : ` in namespace ${namespace}`;
  return serviceUnavailable(
    `edgebox: kube-apiserver is unreachable and ${req.component} never read ` +
      `${resource} ${JSON.stringify(name)}${where} online, nor listed a scope that would hold it` +
      `${lossSuffix(loss)}; the node cannot tell whether it exists`,
  );
}
