import {
  parseFieldSelector,
  parseLabelSelector,
  SelectorError,
  type FieldSelector,
  type LabelSelector,
} from '../../src/kube/selectors.ts';
import type { HubRequest } from '../hub-request.ts';
import { parseResourceVersion } from './event-ring.ts';

/**
 * Which LIST or WATCH a shared resource answers, and how, decided as
 * kube-apiserver's watch cache decides it (k8s.io/apiserver
 * storage/cacher: delegator.ShouldDelegateList, watchCache
 * waitUntilFreshAndList, Cacher.Watch). What the watch cache hands to
 * etcd the hub hands to upstream: a consistent read (no resourceVersion),
 * an exact read older than the hub's history, anything the apiserver would
 * refuse as invalid (upstream says why, word for word).
 */

export interface Selection {
  /** '' for every namespace. */
  namespace: string;
  labels: LabelSelector;
  fields: FieldSelector | undefined;
  /** No label or field selector: every object in the namespace is selected. */
  everything: boolean;
}

export type SharedListPlan = {
  kind: 'list';
  selection: Selection;
  /** The resource must have reached this version first (waited for, then 504). */
  notOlderThan: bigint;
  /** Read the objects as they were at exactly this version; undefined: the newest. */
  exact: bigint | undefined;
  /** Objects per page; 0: every object. */
  limit: number;
  /** Key to start from (a continued list), relative to the namespace's prefix. */
  start: string;
};

export type SharedWatchPlan = {
  kind: 'watch';
  selection: Selection;
  /** Send what is held as ADDED events first (a watch without a version, or a watch-list). */
  initialEvents: boolean;
  /** A watch-list: the initial events end with a BOOKMARK annotated `k8s.io/initial-events-end`. */
  watchList: boolean;
  /** Events after this version (undefined: from now). */
  from: bigint | undefined;
  /** The resource must have reached this version before a watch-list starts. */
  notOlderThan: bigint;
  bookmarks: boolean;
  timeoutSeconds: number | undefined;
};

/** Handed upstream, as the watch cache hands it to etcd. */
export type Upstream = { kind: 'upstream'; why: string };

export type SharedPlan = SharedListPlan | SharedWatchPlan | Upstream;

function upstream(why: string): Upstream {
  return { kind: 'upstream', why };
}

function selectionOf(hubReq: HubRequest): Selection | undefined {
  const { info, query } = hubReq;
  const labelText = query.get('labelSelector') ?? '';
  const fieldText = query.get('fieldSelector') ?? '';
  const labels = parseLabelSelector(labelText);
  const fields =
    fieldText === '' ? undefined : parseFieldSelector(fieldText, info.apiGroup, info.resource);
  if (labels instanceof SelectorError || fields instanceof SelectorError) return undefined;
  return {
    namespace: info.namespace,
    labels,
    fields,
    everything: labelText.trim() === '' && fieldText.trim() === '',
  };
}

/** `continue` as kube-apiserver writes it: base64url of `{"v":"meta.k8s.io/v1","rv":N,"start":KEY}`. */
export function encodeContinue(rv: bigint, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: Number(rv), start })).toString(
    'base64url',
  );
}

/** A token kube-apiserver could have written, or undefined (upstream then says what is wrong with it). */
export function decodeContinue(text: string): { rv: bigint; start: string } | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
  let token: unknown;
  try {
    token = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  const t = token as { v?: unknown; rv?: unknown; start?: unknown } | null;
  if (t?.v !== 'meta.k8s.io/v1' || typeof t.start !== 'string' || t.start === '') return undefined;
  if (typeof t.rv !== 'number' || !Number.isSafeInteger(t.rv) || t.rv <= 0) return undefined;
  // The apiserver refuses a start key that climbs out of the listed prefix.
  if (t.start.startsWith('/') || t.start.split('/').includes('..')) return undefined;
  return { rv: BigInt(t.rv), start: t.start };
}

function positiveInteger(text: string | null): number | undefined {
  if (text === null || text === '') return 0;
  return /^\d{1,9}$/.test(text) ? Number(text) : undefined;
}

function planList(hubReq: HubRequest, selection: Selection): SharedPlan {
  const q = hubReq.query;
  const rvText = q.get('resourceVersion') ?? '';
  const match = q.get('resourceVersionMatch') ?? '';
  const limit = positiveInteger(q.get('limit'));
  if (limit === undefined) return upstream('limit is not a number');
  const continueText = q.get('continue') ?? '';
  const rv = rvText === '' ? undefined : parseResourceVersion(rvText);
  if (rvText !== '' && rv === undefined) return upstream('resourceVersion is not a number');
  const list = { kind: 'list' as const, selection, notOlderThan: 0n, exact: undefined, start: '' };

  if (continueText !== '') {
    if (match !== '' || (rv !== undefined && rv !== 0n)) return upstream('invalid with continue');
    const token = decodeContinue(continueText);
    if (token === undefined) return upstream('a continue token the hub did not write');
    // A page of a list is read at the version of its first page.
    return { ...list, notOlderThan: token.rv, exact: token.rv, limit, start: token.start };
  }
  if (match === 'Exact') {
    if (rv === undefined || rv === 0n) return upstream('Exact needs a resourceVersion');
    return { ...list, notOlderThan: rv, exact: rv, limit };
  }
  if (match === 'NotOlderThan') {
    if (rv === undefined) return upstream('NotOlderThan needs a resourceVersion');
    return { ...list, notOlderThan: rv, limit: rvText === '0' ? 0 : limit };
  }
  if (match !== '') return upstream(`resourceVersionMatch ${match}`);
  // No version: a consistent read, which only upstream can promise.
  if (rv === undefined) return upstream('a consistent read');
  // "0": any version, and the watch cache ignores limit for it.
  if (rv === 0n) return { ...list, limit: 0 };
  // A limit with a version: the legacy exact read.
  if (limit > 0) return { ...list, notOlderThan: rv, exact: rv, limit };
  return { ...list, notOlderThan: rv, limit: 0 };
}

function planWatch(hubReq: HubRequest, selection: Selection): SharedPlan {
  const q = hubReq.query;
  const rvText = q.get('resourceVersion') ?? '';
  const match = q.get('resourceVersionMatch') ?? '';
  const sendInitial = q.get('sendInitialEvents');
  const bookmarks = q.get('allowWatchBookmarks') === 'true';
  const rv = rvText === '' ? undefined : parseResourceVersion(rvText);
  if (rvText !== '' && rv === undefined) return upstream('resourceVersion is not a number');
  const timeoutText = q.get('timeoutSeconds');
  const timeout = positiveInteger(timeoutText);
  if (timeout === undefined) return upstream('timeoutSeconds is not a number');
  const watch = {
    kind: 'watch' as const,
    selection,
    bookmarks,
    timeoutSeconds: timeout > 0 ? timeout : undefined,
    notOlderThan: 0n,
  };

  if (sendInitial !== null) {
    // The apiserver's validation: NotOlderThan, and bookmarks when initial events are asked for.
    if (match !== 'NotOlderThan') return upstream('sendInitialEvents needs NotOlderThan');
    if (sendInitial === 'true') {
      if (!bookmarks) return upstream('sendInitialEvents needs allowWatchBookmarks');
      // No version: the initial events must be current, which only upstream can promise.
      if (rv === undefined) return upstream('a consistent watch-list');
      return {
        ...watch,
        initialEvents: true,
        watchList: true,
        from: undefined,
        notOlderThan: rv,
      };
    }
    if (sendInitial !== 'false') return upstream('sendInitialEvents is not a boolean');
    return { ...watch, initialEvents: false, watchList: false, from: rv === 0n ? undefined : rv };
  }
  if (match !== '') return upstream('resourceVersionMatch on a watch without sendInitialEvents');
  // No version or "0": what is held, then what changes (the legacy watch).
  if (rv === undefined || rv === 0n) {
    return { ...watch, initialEvents: true, watchList: false, from: undefined };
  }
  return { ...watch, initialEvents: false, watchList: false, from: rv };
}

/** How a cluster-wide LIST or WATCH of a shared resource is answered. */
export function planShared(hubReq: HubRequest): SharedPlan {
  const { info } = hubReq;
  if (info.name !== '' || info.subresource !== '') return upstream('not a collection');
  const selection = selectionOf(hubReq);
  if (selection === undefined) return upstream('a selector the hub cannot read');
  if (info.verb === 'list') return planList(hubReq, selection);
  if (info.verb === 'watch') return planWatch(hubReq, selection);
  return upstream(`verb ${info.verb}`);
}
