import type { ServerResponse } from 'node:http';
import { fieldsOf, matchesFields, matchesLabels } from '../../src/kube/selectors.ts';
import {
  expired,
  tooLargeResourceVersion,
  writeStatus,
  type KubeStatus,
} from '../../src/kube/status.ts';
import type { HubRequest } from '../hub-request.ts';
import { FOREIGN_CONTINUE_MESSAGE } from '../local/continue-token.ts';
import type { GuardedRecorder } from '../remote/guarded-recorder.ts';
import { rewriteEvent, type ObjectRewrite } from '../filter/filter-chain.ts';
import { LOCAL_SOURCE, SOURCE_HEADER } from '../response-source.ts';
import type { SharedEvent, SharedObject } from './event-ring.ts';
import type { SharedChange, SharedResource } from './shared-resource.ts';
import {
  encodeContinue,
  type Selection,
  type SharedListPlan,
  type SharedWatchPlan,
} from './shared-query.ts';

/**
 * A local LIST or WATCH answered from a SharedResource, once shared-query.ts
 * has said how: selectors, pages of one version, waiting for a version not
 * reached yet, 410 for one the history no longer reaches, watch-lists and
 * bookmarks, as kube-apiserver's watch cache answers them. Each answer is
 * recorded for the asking component as upstream would have sent it
 * (unfiltered); the response filters apply to what the client is shown.
 */

/** How long a read waits for a resourceVersion not reached yet (the watch cache's blockTimeout). */
export const VERSION_WAIT_MS = 3000;

/** What an answer needs besides the request and the resource. */
export interface SharedAnswerContext {
  rewrite: ObjectRewrite | undefined;
  /** The component's recorder, made once the answer is known to be a 200. */
  recorder: () => GuardedRecorder;
}

function selects(sel: Selection, o: SharedObject, group: string, resource: string): boolean {
  if (sel.namespace !== '' && o.namespace !== sel.namespace) return false;
  if (!matchesLabels(sel.labels, o.labels)) return false;
  return sel.fields === undefined || matchesFields(sel.fields, fieldsOf(group, resource, o.object));
}

function answerHeaders(res: ServerResponse): void {
  res.setHeader(SOURCE_HEADER, LOCAL_SOURCE);
  res.setHeader('Content-Type', 'application/json');
}

function answerStatus(res: ServerResponse, status: KubeStatus): void {
  res.setHeader(SOURCE_HEADER, LOCAL_SOURCE);
  writeStatus(res, status);
}

function apiVersionOf(hubReq: HubRequest): string {
  const { apiGroup, apiVersion } = hubReq.info;
  return apiGroup === '' ? apiVersion : `${apiGroup}/${apiVersion}`;
}

const COMMA = Buffer.from(',');

function listBody(head: object, items: readonly Buffer[]): Buffer {
  const text = JSON.stringify(head);
  return Buffer.concat([
    Buffer.from(`${text.slice(0, -1)},"items":[`),
    ...items.flatMap((b, i) => (i === 0 ? [b] : [COMMA, b])),
    Buffer.from(']}\n'),
  ]);
}

/** One page of `objects` (sorted by key) as the watch cache cuts it, continue token included. */
function pageOf(
  objects: readonly SharedObject[],
  plan: SharedListPlan,
  rv: bigint,
  group: string,
  resource: string,
): { selected: SharedObject[]; continue?: string; remainingItemCount?: number } {
  const prefix = plan.selection.namespace === '' ? '' : `${plan.selection.namespace}/`;
  const from = prefix + plan.start;
  const candidates = objects.filter((o) => o.key.startsWith(prefix) && o.key >= from);
  const selected: SharedObject[] = [];
  let i = 0;
  for (; i < candidates.length; i++) {
    const o = candidates[i];
    if (o === undefined || !selects(plan.selection, o, group, resource)) continue;
    selected.push(o);
    if (plan.limit > 0 && selected.length >= plan.limit) break;
  }
  const last = selected.at(-1);
  // As the apiserver: more when objects are left to look at, matching or not.
  if (plan.limit === 0 || last === undefined || i >= candidates.length - 1) return { selected };
  const token = encodeContinue(rv, `${last.key.slice(prefix.length)}\u0000`);
  // An exact count only when no selector can leave objects out.
  return plan.selection.everything
    ? { selected, continue: token, remainingItemCount: candidates.length - plan.limit }
    : { selected, continue: token };
}

/**
 * A LIST. 'upstream' when the hub cannot answer it after all (an exact
 * version older than its history): the request then goes upstream, as the
 * watch cache hands such a read to etcd.
 */
export async function serveSharedList(
  hubReq: HubRequest,
  res: ServerResponse,
  shared: SharedResource,
  plan: SharedListPlan,
  ctx: SharedAnswerContext,
): Promise<'answered' | 'upstream'> {
  // An exact version the hub has not reached (a continue token upstream wrote for a
  // consistent list) is upstream's to answer: the hub cannot ask upstream for progress,
  // as the watch cache asks etcd before it waits, so it hands the read on as the
  // watch cache does when it cannot.
  if (plan.exact !== undefined && plan.exact > shared.resourceVersion) return 'upstream';
  const fresh = await shared.reached(plan.notOlderThan, VERSION_WAIT_MS);
  if (res.destroyed) return 'answered';
  if (!fresh) {
    answerStatus(res, tooLargeResourceVersion(plan.notOlderThan, shared.resourceVersion));
    return 'answered';
  }
  const rv = plan.exact ?? shared.resourceVersion;
  const objects = plan.exact === undefined ? shared.objects() : shared.objectsAt(plan.exact);
  if (objects === undefined) return 'upstream';
  if (objects === 'expired') {
    if (plan.start === '') return 'upstream';
    // The first page's version is gone: the client starts the list again.
    answerStatus(res, expired(FOREIGN_CONTINUE_MESSAGE));
    return 'answered';
  }
  const { apiGroup, resource } = hubReq.info;
  const page = pageOf(objects, plan, rv, apiGroup, resource);
  const head = {
    kind: shared.listKind,
    apiVersion: apiVersionOf(hubReq),
    metadata: {
      resourceVersion: String(rv),
      ...(page.continue === undefined ? {} : { continue: page.continue }),
      ...(page.remainingItemCount === undefined
        ? {}
        : { remainingItemCount: page.remainingItemCount }),
    },
  };
  const shown: Buffer[] = [];
  for (const o of page.selected) {
    const raw = ctx.rewrite === undefined ? o.raw : ctx.rewrite(o.raw);
    if (raw !== undefined) shown.push(raw);
  }
  answerHeaders(res);
  res.writeHead(200);
  res.end(listBody(head, shown));
  const recorder = ctx.recorder();
  recorder.write(
    listBody(
      head,
      page.selected.map((o) => o.raw),
    ),
  );
  await recorder.end();
  return 'answered';
}

/**
 * An event as a watcher with selection `sel` sees it: an object that comes
 * into the selection is ADDED, one that leaves it DELETED (as the
 * apiserver's watch cache does), one outside it never shown.
 */
function viewOf(
  event: SharedEvent,
  sel: Selection,
  group: string,
  resource: string,
): { type: string; raw: Buffer } | undefined {
  const prior = event.previous ?? (event.type === 'DELETED' ? event.current : undefined);
  const before = prior !== undefined && selects(sel, prior, group, resource);
  const now = event.type !== 'DELETED' && selects(sel, event.current, group, resource);
  if (now) return { type: before ? 'MODIFIED' : 'ADDED', raw: event.current.raw };
  return before ? { type: 'DELETED', raw: event.current.raw } : undefined;
}

/** The annotation on the BOOKMARK that ends a watch-list's initial events. */
const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

const END = Buffer.from('}\n');

/**
 * A watch event's line, built once per object and type however many
 * watchers are sent it (lines are never written to after, so they are shared).
 */
const lines = new WeakMap<Buffer, Map<string, Buffer>>();

function eventLine(type: string, raw: Buffer): Buffer {
  let byType = lines.get(raw);
  if (byType === undefined) lines.set(raw, (byType = new Map()));
  let line = byType.get(type);
  if (line === undefined) {
    line = Buffer.concat([Buffer.from(`{"type":"${type}","object":`), raw, END]);
    byType.set(type, line);
  }
  return line;
}

/**
 * A WATCH: a watch-list's or a version-less watch's initial events, or the
 * ring's changes after `from` (a 410 ERROR event when the ring no longer
 * reaches back to it); then every change as it comes, bookmarks to those
 * that asked for them, until `timeoutSeconds` or the client leaves.
 */
export async function serveSharedWatch(
  hubReq: HubRequest,
  res: ServerResponse,
  shared: SharedResource,
  plan: SharedWatchPlan,
  ctx: SharedAnswerContext,
): Promise<void> {
  const fresh = await shared.reached(plan.notOlderThan, VERSION_WAIT_MS);
  // The client left while the watch waited: nothing to serve.
  if (res.destroyed) return;
  const { apiGroup, resource } = hubReq.info;
  const sel = plan.selection;
  answerHeaders(res);
  res.writeHead(200);
  // A client's watch is established once it has the headers, events or not.
  res.flushHeaders();
  const errorEvent = (status: KubeStatus): void => {
    res.end(`{"type":"ERROR","object":${JSON.stringify(status)}}\n`);
  };
  if (!fresh) {
    // As the watch cache: the watch is answered, and its one event says why it ends.
    errorEvent(tooLargeResourceVersion(plan.notOlderThan, shared.resourceVersion));
    return;
  }
  const replay = plan.from === undefined ? [] : shared.since(plan.from);
  if (replay === 'expired') {
    errorEvent(expired(`too old resource version: ${plan.from} (${shared.oldestResumable})`));
    return;
  }

  const recorder = ctx.recorder();
  const send = (type: string, raw: Buffer): void => {
    const line = eventLine(type, raw);
    recorder.write(line);
    const shown = ctx.rewrite === undefined ? { type, raw } : rewriteEvent(ctx.rewrite, type, raw);
    if (shown === undefined) return;
    res.write(shown.raw === raw && shown.type === type ? line : eventLine(shown.type, shown.raw));
  };
  const bookmark = (rv: bigint, initialEventsEnd: boolean): void => {
    const object = {
      kind: shared.listKind.replace(/List$/, ''),
      apiVersion: apiVersionOf(hubReq),
      metadata: {
        resourceVersion: String(rv),
        ...(initialEventsEnd ? { annotations: { [INITIAL_EVENTS_END]: 'true' } } : {}),
      },
    };
    const line = Buffer.from(`{"type":"BOOKMARK","object":${JSON.stringify(object)}}\n`);
    recorder.write(line);
    res.write(line);
  };
  /** Nothing at or before this version is sent: the client has it already. */
  let seen = plan.from ?? 0n;
  const sendChange = (event: SharedEvent): void => {
    if (event.rv <= seen) return;
    const view = viewOf(event, sel, apiGroup, resource);
    if (view !== undefined) send(view.type, view.raw);
  };

  if (plan.initialEvents) {
    seen = shared.resourceVersion;
    for (const o of shared.objects()) if (selects(sel, o, apiGroup, resource)) send('ADDED', o.raw);
    if (plan.watchList) bookmark(seen, true);
  }
  for (const event of replay) sendChange(event);

  let ended = false;
  /** A clean end (timeout, hub closing): what was recorded is committed. */
  const endCleanly = (): void => {
    if (ended) return;
    ended = true;
    res.end();
    void recorder.end();
  };
  const stop = shared.subscribe((change: SharedChange) => {
    if (change.kind === 'event') sendChange(change.event);
    else if (change.kind === 'end') endCleanly();
    // As the watch cache, a bookmark may repeat the version the client has; never an older one.
    else if (plan.bookmarks && change.rv >= seen) bookmark(change.rv, false);
  });
  const timer =
    plan.timeoutSeconds === undefined
      ? undefined
      : setTimeout(endCleanly, plan.timeoutSeconds * 1000);
  res.on('close', () => {
    stop();
    clearTimeout(timer);
    if (!ended) recorder.abort('the client went away');
  });
}
