import type { ServerResponse } from 'node:http';
import {
  fieldsOf,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  SelectorError,
  type FieldSelector,
  type LabelSelector,
} from '../../src/kube/selectors.ts';
import { expired } from '../../src/kube/status.ts';
import type { HubRequest } from '../hub-request.ts';
import type { GuardedRecorder } from '../remote/guarded-recorder.ts';
import { rewriteEvent, type ObjectRewrite } from '../filter/filter-chain.ts';
import { LOCAL_SOURCE, SOURCE_HEADER } from '../response-source.ts';
import { parseResourceVersion, type SharedEvent, type SharedObject } from './event-ring.ts';
import type { SharedChange, SharedResource } from './shared-resource.ts';

/**
 * A local LIST or WATCH answered from a SharedResource, as the apiserver's
 * watch cache answers it: namespace, label and field selectors, the
 * resourceVersion to resume from (410 Expired when older than the ring),
 * bookmarks, timeoutSeconds. What it does not answer (a paged LIST, an
 * exact resourceVersion match, a selector it cannot parse) it declines:
 * the request goes its usual way upstream.
 */

interface Selection {
  namespace: string;
  labels: LabelSelector;
  fields: FieldSelector | undefined;
}

function selectionOf(hubReq: HubRequest): Selection | undefined {
  const { info, query } = hubReq;
  const labels = parseLabelSelector(query.get('labelSelector') ?? '');
  const fieldText = query.get('fieldSelector') ?? '';
  const fields =
    fieldText === '' ? undefined : parseFieldSelector(fieldText, info.apiGroup, info.resource);
  if (labels instanceof SelectorError || fields instanceof SelectorError) return undefined;
  return { namespace: info.namespace, labels, fields };
}

function selects(sel: Selection, o: SharedObject, group: string, resource: string): boolean {
  if (sel.namespace !== '' && o.namespace !== sel.namespace) return false;
  if (!matchesLabels(sel.labels, o.labels)) return false;
  return sel.fields === undefined || matchesFields(sel.fields, fieldsOf(group, resource, o.object));
}

/** May this request be answered from `shared`? (Else it goes upstream as usual.) */
export function sharedAnswers(hubReq: HubRequest, shared: SharedResource): boolean {
  const { info, query } = hubReq;
  if (!shared.synced || info.name !== '' || info.subresource !== '') return false;
  if (info.verb !== 'list' && info.verb !== 'watch') return false;
  if (query.has('limit') || query.has('continue')) return false;
  if (query.has('resourceVersionMatch') || query.has('sendInitialEvents')) return false;
  const rv = query.get('resourceVersion') ?? '';
  if (rv !== '' && parseResourceVersion(rv) === undefined) return false;
  // A LIST at a version the hub has not reached yet would have to wait for it.
  if (info.verb === 'list' && rv !== '' && BigInt(rv) > shared.resourceVersion) return false;
  return selectionOf(hubReq) !== undefined;
}

function answerHeaders(res: ServerResponse): void {
  res.setHeader(SOURCE_HEADER, LOCAL_SOURCE);
  res.setHeader('Content-Type', 'application/json');
}

/** A LIST: the held objects the request selects, at the resource's current version. */
export function serveSharedList(
  hubReq: HubRequest,
  res: ServerResponse,
  shared: SharedResource,
  rewrite: ObjectRewrite | undefined,
  recorder: GuardedRecorder,
): Promise<void> | undefined {
  const sel = selectionOf(hubReq);
  if (sel === undefined) throw new Error('serveSharedList called for a request it declines');
  const { apiGroup, resource, apiVersion } = hubReq.info;
  const selected = shared.objects().filter((o) => selects(sel, o, apiGroup, resource));
  const items: Buffer[] = [];
  for (const o of selected) {
    const raw = rewrite === undefined ? o.raw : rewrite(o.raw);
    if (raw !== undefined) items.push(raw);
  }
  const apiVersionText = apiGroup === '' ? apiVersion : `${apiGroup}/${apiVersion}`;
  const head = JSON.stringify({
    kind: shared.listKind,
    apiVersion: apiVersionText,
    metadata: { resourceVersion: String(shared.resourceVersion) },
  });
  const body = (objects: Buffer[]) =>
    Buffer.concat([
      Buffer.from(`${head.slice(0, -1)},"items":[`),
      ...objects.flatMap((b, i) => (i === 0 ? [b] : [COMMA, b])),
      Buffer.from(']}\n'),
    ]);
  answerHeaders(res);
  res.writeHead(200);
  res.end(body(items));
  // Recorded for the component as upstream would have answered it (unfiltered):
  // offline, the same scope answers it from the cache.
  recorder.write(body(selected.map((o) => o.raw)));
  return recorder.end();
}

const COMMA = Buffer.from(',');

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

/**
 * A WATCH: from `resourceVersion` (the ring's changes after it, or a 410
 * ERROR event when the ring does not reach back to it), or, without one,
 * the selected objects as ADDED events; then every change as it comes.
 */
export function serveSharedWatch(
  hubReq: HubRequest,
  res: ServerResponse,
  shared: SharedResource,
  rewrite: ObjectRewrite | undefined,
  recorder: GuardedRecorder,
): void {
  const sel = selectionOf(hubReq);
  if (sel === undefined) throw new Error('serveSharedWatch called for a request it declines');
  const { apiGroup, resource, apiVersion } = hubReq.info;
  const bookmarks = hubReq.query.get('allowWatchBookmarks') === 'true';
  const rvText = hubReq.query.get('resourceVersion') ?? '';
  answerHeaders(res);
  res.writeHead(200);

  const send = (type: string, raw: Buffer): void => {
    recorder.write(Buffer.concat([Buffer.from(`{"type":"${type}","object":`), raw, END]));
    const shown = rewrite === undefined ? { type, raw } : rewriteEvent(rewrite, type, raw);
    if (shown === undefined) return;
    res.write(Buffer.concat([Buffer.from(`{"type":"${shown.type}","object":`), shown.raw, END]));
  };
  const sendChange = (event: SharedEvent): void => {
    const view = viewOf(event, sel, apiGroup, resource);
    if (view !== undefined) send(view.type, view.raw);
  };

  const rv = rvText === '' || rvText === '0' ? undefined : parseResourceVersion(rvText);
  if (rv === undefined) {
    for (const o of shared.objects()) if (selects(sel, o, apiGroup, resource)) send('ADDED', o.raw);
  } else {
    const replay = shared.since(rv);
    if (replay === 'expired') {
      const status = expired(`too old resource version: ${rv} (${shared.resourceVersion})`);
      res.end(`{"type":"ERROR","object":${JSON.stringify(status)}}\n`);
      recorder.abort('the watch expired');
      return;
    }
    for (const event of replay) sendChange(event);
  }
  const apiVersionText = apiGroup === '' ? apiVersion : `${apiGroup}/${apiVersion}`;
  const kind = shared.listKind.replace(/List$/, '');
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
    else if (bookmarks) {
      const object = {
        kind,
        apiVersion: apiVersionText,
        metadata: { resourceVersion: String(change.rv) },
      };
      res.write(`{"type":"BOOKMARK","object":${JSON.stringify(object)}}\n`);
    }
  });
  const timeoutSeconds = Number(hubReq.query.get('timeoutSeconds') ?? '');
  const timer =
    Number.isFinite(timeoutSeconds) && timeoutSeconds > 0
      ? setTimeout(endCleanly, timeoutSeconds * 1000)
      : undefined;
  res.on('close', () => {
    stop();
    clearTimeout(timer);
    if (!ended) recorder.abort('the client went away');
  });
}

const END = Buffer.from('}\n');
