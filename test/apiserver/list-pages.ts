import {
  badRequest,
  expired,
  tooLargeResourceVersion,
  type KubeStatus,
} from '../../src/kube/status.ts';
import { parseResourceVersion, type ListOptions } from './list-options.ts';
import type { ResourceType } from './resource-types.ts';
import {
  lowerBound,
  ResourceVersionTooOldError,
  type Snapshot,
  type StoredObject,
  type VersionedStorage,
} from './versioned-storage.ts';

/**
 * Which snapshot a LIST reads and which page of it, following kube-apiserver
 * v1.32: the watch cache serves `resourceVersion=0` (ignoring `limit`) and
 * not-older-than reads; etcd serves exact reads and pages, at the snapshot
 * resourceVersion carried in the continue token.
 */

// etcd3 store messages (k8s.io/apiserver/pkg/storage/etcd3/errors.go), word for word.
export const LIST_TOO_OLD_MESSAGE = 'The resourceVersion for the provided list is too old.';
export const CONTINUE_TOO_OLD_MESSAGE =
  'The provided continue parameter is too old to display a consistent list result. ' +
  'You can start a new list without the continue parameter, or use the continue token in this ' +
  'response to retrieve the remainder of the results. Continuing with the provided token results ' +
  'in an inconsistent list - objects that were created, modified, or deleted between the time the ' +
  'first chunk was returned and now may show up in the list.';

/** How long a read at a future resourceVersion waits before 504 (the watch cache's 3 s). */
export const TOO_LARGE_RV_WAIT_MS = 3000;

export interface ContinueToken {
  /** Snapshot resourceVersion; -1 = "continue at the newest state" (inconsistent). */
  rv: number;
  /** Key to start from, relative to the listing's prefix. */
  start: string;
}

/** base64url(JSON), the etcd3 store's format, so tokens look like the real ones. */
export function encodeContinueToken(token: ContinueToken): string {
  return Buffer.from(
    JSON.stringify({ v: 'meta.k8s.io/v1', rv: token.rv, start: token.start }),
  ).toString('base64url');
}

export function decodeContinueToken(text: string): ContinueToken | KubeStatus {
  const bad = (why: string) =>
    badRequest(`invalid continue token: continue key is not valid: ${why}`);
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(text)) return bad('illegal base64 data');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return bad('invalid JSON');
  }
  const d = decoded as { v?: unknown; rv?: unknown; start?: unknown };
  if (d.v !== 'meta.k8s.io/v1') return bad('server does not recognize this encoded version');
  if (typeof d.rv !== 'number' || !Number.isInteger(d.rv) || typeof d.start !== 'string') {
    return bad('incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
  }
  if (d.start === '' || d.start.includes('..') || d.start.startsWith('/')) {
    return bad('key is not valid');
  }
  return { rv: d.rv, start: d.start };
}

export interface ListPage {
  rv: number;
  items: StoredObject[];
  continueToken: string | undefined;
  remainingItemCount: number | undefined;
}

export interface PageRequest {
  type: ResourceType;
  namespace: string;
  options: ListOptions;
  match: (stored: StoredObject) => boolean;
  /** True when no selector filters the listing (remainingItemCount is only exact then). */
  unfiltered: boolean;
}

export class ListError extends Error {
  readonly status: KubeStatus;
  constructor(status: KubeStatus) {
    super(status.message);
    this.name = 'ListError';
    this.status = status;
  }
}

async function atLeast(storage: VersionedStorage, rv: number): Promise<void> {
  if (storage.resourceVersion >= rv) return;
  const reached = await storage.waitForResourceVersion(rv, TOO_LARGE_RV_WAIT_MS);
  if (!reached) throw new ListError(tooLargeResourceVersion(rv, storage.resourceVersion));
}

function snapshotAt(
  storage: VersionedStorage,
  type: ResourceType,
  rv: number | undefined,
  message: string,
): Snapshot {
  try {
    return storage.snapshot(type, rv);
  } catch (err) {
    if (err instanceof ResourceVersionTooOldError) throw new ListError(expired(message));
    throw err;
  }
}

/** Reads one page (or the whole list) as the apiserver would answer the request. */
export async function readListPage(storage: VersionedStorage, req: PageRequest): Promise<ListPage> {
  const { options } = req;
  const prefix = req.type.namespaced && req.namespace !== '' ? `${req.namespace}/` : '';

  if (options.continueToken !== '') {
    if (
      options.resourceVersion !== undefined &&
      options.resourceVersion !== '' &&
      options.resourceVersion !== '0'
    ) {
      throw new ListError(
        badRequest('specifying resource version is not allowed when using continue'),
      );
    }
    const token = decodeContinueToken(options.continueToken);
    if ('kind' in token) throw new ListError(token);
    if (token.rv !== -1 && token.rv < storage.compactedResourceVersion) {
      const status = expired(CONTINUE_TOO_OLD_MESSAGE);
      throw new ListError({
        ...status,
        metadata: { continue: encodeContinueToken({ rv: -1, start: token.start }) },
      } as unknown as KubeStatus);
    }
    const snapshot = snapshotAt(
      storage,
      req.type,
      token.rv === -1 ? undefined : token.rv,
      CONTINUE_TOO_OLD_MESSAGE,
    );
    return page(snapshot, req, prefix, prefix + token.start, options.limit);
  }

  const rv = parseResourceVersion(options.resourceVersion);
  if (typeof rv === 'object') throw new ListError(rv);
  const match = options.resourceVersionMatch;

  if (rv !== undefined && (match === 'Exact' || (match === '' && options.limit > 0 && rv > 0))) {
    // Served by etcd at exactly that revision (the legacy case: a limit with an RV).
    if (rv > storage.resourceVersion) await atLeast(storage, rv);
    const snapshot = snapshotAt(storage, req.type, rv, LIST_TOO_OLD_MESSAGE);
    return page(snapshot, req, prefix, prefix, options.limit);
  }
  if (rv !== undefined && rv > 0) await atLeast(storage, rv);
  const snapshot = storage.snapshot(req.type);
  // The watch cache serves resourceVersion=0 and ignores limit, as v1.32 does.
  const fromCache = options.resourceVersion === '0';
  return page(snapshot, req, prefix, prefix, fromCache ? 0 : options.limit);
}

function page(
  snapshot: Snapshot,
  req: PageRequest,
  prefix: string,
  startKey: string,
  limit: number,
): ListPage {
  const keys = snapshot.keys;
  const end = prefix === '' ? keys.length : lowerBound(keys, prefixEnd(prefix));
  const items: StoredObject[] = [];
  let i = lowerBound(keys, startKey);
  let lastKey = '';
  for (; i < end; i++) {
    const key = keys[i];
    if (key === undefined) continue;
    const stored = snapshot.get(key);
    if (stored === undefined || !req.match(stored)) continue;
    items.push(stored);
    if (limit > 0 && items.length >= limit) {
      lastKey = key;
      i++;
      break;
    }
  }
  const hasMore = limit > 0 && items.length >= limit && i < end;
  if (!hasMore)
    return { rv: snapshot.rv, items, continueToken: undefined, remainingItemCount: undefined };
  return {
    rv: snapshot.rv,
    items,
    continueToken: encodeContinueToken({
      rv: snapshot.rv,
      start: `${lastKey.slice(prefix.length)}\u0000`,
    }),
    remainingItemCount: req.unfiltered ? end - i : undefined,
  };
}

/** The smallest string greater than every string starting with `prefix`. */
function prefixEnd(prefix: string): string {
  const last = prefix.charCodeAt(prefix.length - 1);
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}
