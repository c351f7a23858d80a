import type { ServerResponse } from 'node:http';
import { fieldsOf } from '../../src/kube/selectors.ts';
import { badRequest, expired } from '../../src/kube/status.ts';
import type { Logger } from '../../src/log.ts';
import { requestScope, resourceRefOf } from '../cache/cache-manager.ts';
import type { HubRequest } from '../hub-request.ts';
import type { CacheStore } from '../cache/cache-store.ts';
import type { ResourceEntry } from '../cache/resource-state.ts';
import { builtinKind, guessKind } from '../cache/kinds.ts';
import { apiVersionOf, namespacePrefix, splitObjectId, type ResourceRef } from '../cache/keys.ts';
import { scopeMatches, type CompiledScope } from '../cache/scope.ts';
import type { ObjectRewrite } from '../filter/filter-chain.ts';
import { coveringScope, scopeNotCached } from './cache-knowledge.ts';
import { baseHeaders, drained, writeCachedStatus } from './cached-response.ts';
import { decodeContinue, encodeContinue, ForeignContinueError } from './continue-token.ts';

const FETCH_BATCH = 500;

export function kindOf(
  store: CacheStore,
  entry: ResourceEntry | undefined,
  ref: ResourceRef,
): string {
  return entry?.kind ?? store.recordedKind(ref) ?? builtinKind(ref) ?? guessKind(ref);
}

function parseLimit(text: string | null): number | Error {
  if (text === null || text === '') return 0;
  if (!/^-?[0-9]+$/.test(text))
    return new Error(`invalid limit ${JSON.stringify(text)}: not an integer`);
  const n = Number(text);
  return n > 0 ? n : 0;
}

/** Writes a list body as it is produced, honouring back-pressure. */
class ListBodyWriter {
  private readonly res: ServerResponse;
  private readonly rewrite: ObjectRewrite | undefined;
  private first = true;
  /** `rewrite`: the response filters' (an item they drop is left out). */
  constructor(res: ServerResponse, rewrite: ObjectRewrite | undefined) {
    this.res = res;
    this.rewrite = rewrite;
  }
  async head(kind: string, apiVersion: string, metadata: Record<string, unknown>): Promise<void> {
    await this.send(
      Buffer.from(
        `{"kind":${JSON.stringify(kind)},"apiVersion":${JSON.stringify(apiVersion)},"metadata":${JSON.stringify(metadata)},"items":[`,
      ),
    );
  }
  async items(raws: readonly Buffer[]): Promise<void> {
    if (raws.length === 0) return;
    const parts: Buffer[] = [];
    for (const stored of raws) {
      const raw = this.rewrite === undefined ? stored : this.rewrite(stored);
      if (raw === undefined) continue;
      if (!this.first) parts.push(COMMA);
      this.first = false;
      parts.push(raw);
    }
    if (parts.length > 0) await this.send(Buffer.concat(parts));
  }
  end(): void {
    this.res.end(TAIL);
  }
  private async send(chunk: Buffer): Promise<void> {
    if (this.res.destroyed) throw new Error('client went away');
    this.res.write(chunk);
    await drained(this.res);
  }
}
const COMMA = Buffer.from(',');
const TAIL = Buffer.from(']}\n');

interface ObjectFilter {
  (raw: Buffer): boolean;
}

/** Checks a raw object against the scope; used only where no in-memory meta is loaded. */
function rawFilter(ref: ResourceRef, scope: CompiledScope): ObjectFilter {
  return (raw) => {
    try {
      const obj = JSON.parse(raw.toString('utf8')) as {
        metadata?: { namespace?: string; labels?: Record<string, string> };
      };
      return scopeMatches(
        scope,
        obj.metadata?.namespace ?? '',
        obj.metadata?.labels,
        fieldsOf(ref.group, ref.resource, obj),
      );
    } catch {
      return false;
    }
  };
}

/**
 * Offline LIST: answered only from a scope the cache knows (cache-knowledge.ts),
 * filtered by the request's namespace and selectors, paged with
 * limit/continue, in the apiserver's JSON shape; otherwise a 503.
 */
export async function answerList(
  deps: { store: CacheStore; log: Logger; rewrite?: ObjectRewrite | undefined },
  req: HubRequest,
  res: ServerResponse,
): Promise<void> {
  const { store } = deps;
  const ref = resourceRefOf(req.info);
  const scope = requestScope(req);
  if (scope instanceof Error) return writeCachedStatus(res, badRequest(scope.message));
  const limit = parseLimit(req.query.get('limit'));
  if (limit instanceof Error) return writeCachedStatus(res, badRequest(limit.message));
  const continueText = req.query.get('continue') ?? '';
  const token = continueText === '' ? undefined : decodeContinue(continueText);
  if (token instanceof ForeignContinueError) return writeCachedStatus(res, expired(token.message));
  if (token instanceof Error) return writeCachedStatus(res, badRequest(token.message));

  const entry = store.entry(req.component, ref);
  const covering = coveringScope(entry, scope);
  if (entry === undefined || covering === undefined) {
    return writeCachedStatus(res, scopeNotCached(req.component, ref, scope, store.loss()));
  }
  const kind = kindOf(store, entry, ref);
  let rv = covering.rv === '' ? store.maxResourceVersion() : covering.rv;
  if (token !== undefined) rv = token.rv;
  const start = token?.start;
  // What the scope's latest list and the watch events since delivered: never what
  // another scope's older snapshot still holds (an object deleted upstream since).
  const members = await store.scopeMembers(entry, covering.scope.id);

  res.writeHead(200, baseHeaders());
  const body = new ListBodyWriter(res, deps.rewrite);
  try {
    if (scope.unfiltered) {
      await writeRange(store, entry, scope, new Set(members), start, limit, rv, kind, body);
      return;
    }
    const inNamespace =
      scope.def.namespace === ''
        ? members
        : members.filter((id) => id.startsWith(namespacePrefix(scope.def.namespace)));
    let ids = inNamespace;
    let filter: ObjectFilter | undefined;
    const state = entry.state;
    if (state !== undefined) {
      ids = inNamespace.filter((id) => {
        const meta = state.meta.get(id);
        return (
          meta !== undefined &&
          scopeMatches(scope, splitObjectId(id).namespace, meta.labels, meta.fields)
        );
      });
    } else {
      // A cold resource: its members answer without loading every object's meta
      // (for 100,000 cached objects that load takes over a second; a booting
      // kubelet cannot wait), each checked against the scope as it is read.
      filter = rawFilter(ref, scope);
    }
    await writeIds(store, entry, ids, start, limit, rv, filter, kind, body);
  } catch (err) {
    deps.log.debug({ err: String(err) }, 'offline list not completed');
    res.destroy();
  }
}

async function writeIds(
  store: CacheStore,
  entry: ResourceEntry,
  allIds: readonly string[],
  start: string | undefined,
  limit: number,
  rv: string,
  filter: ObjectFilter | undefined,
  kind: string,
  body: ListBodyWriter,
): Promise<void> {
  let from = 0;
  if (start !== undefined) {
    from = allIds.findIndex((id) => id > start);
    if (from < 0) from = allIds.length;
  }
  const remaining = allIds.length - from;
  const ids = limit > 0 ? allIds.slice(from, from + limit) : allIds.slice(from);
  // With a raw filter the page cannot know its size before reading; fetch first, then write.
  const raws: Buffer[] = [];
  // The page continues after the last id examined, even if the filter dropped it.
  const lastId = ids[ids.length - 1];
  const meta: Record<string, unknown> = { resourceVersion: rv };
  if (filter !== undefined || limit > 0) {
    for (let i = 0; i < ids.length; i += FETCH_BATCH) {
      const chunk = ids.slice(i, i + FETCH_BATCH);
      const values = await store.readObjects(entry.component, entry.ref, chunk);
      values.forEach((raw) => {
        if (raw !== undefined && (filter === undefined || filter(raw))) {
          raws.push(raw);
        }
      });
    }
    if (limit > 0 && remaining > ids.length && lastId !== undefined) {
      meta.continue = encodeContinue(rv, lastId);
      if (filter === undefined) meta.remainingItemCount = remaining - ids.length;
    }
    await body.head(`${kind}List`, apiVersionOf(entry.ref), meta);
    await body.items(raws);
    body.end();
    return;
  }
  await body.head(`${kind}List`, apiVersionOf(entry.ref), meta);
  for (let i = 0; i < ids.length; i += FETCH_BATCH) {
    const values = await store.readObjects(
      entry.component,
      entry.ref,
      ids.slice(i, i + FETCH_BATCH),
    );
    await body.items(values.filter((v): v is Buffer => v !== undefined));
  }
  body.end();
}

/**
 * An unfiltered list streams from LevelDB in key order, keeping the covering
 * scope's members only. When they are every cached object (the usual case:
 * an unfiltered scope owns its resource), the bodies stream without keys.
 */
async function writeRange(
  store: CacheStore,
  entry: ResourceEntry,
  scope: CompiledScope,
  members: ReadonlySet<string>,
  start: string | undefined,
  limit: number,
  rv: string,
  kind: string,
  body: ListBodyWriter,
): Promise<void> {
  const apiVersion = apiVersionOf(entry.ref);
  const namespace = scope.def.namespace;
  if (limit <= 0 && start === undefined && members.size === entry.objects) {
    await body.head(`${kind}List`, apiVersion, { resourceVersion: rv });
    for await (const batch of store.iterateBodies(entry.component, entry.ref, namespace)) {
      await body.items(batch);
    }
    body.end();
    return;
  }
  if (limit <= 0) {
    await body.head(`${kind}List`, apiVersion, { resourceVersion: rv });
    for await (const batch of store.iterateObjects(entry.component, entry.ref, namespace, start)) {
      await body.items(batch.filter(([id]) => members.has(id)).map(([, raw]) => raw));
    }
    body.end();
    return;
  }
  const page: Array<[string, Buffer]> = [];
  let more = false;
  for await (const batch of store.iterateObjects(entry.component, entry.ref, namespace, start)) {
    for (const item of batch) {
      if (!members.has(item[0])) continue;
      if (page.length === limit) {
        more = true;
        break;
      }
      page.push(item);
    }
    if (more) break;
  }
  const meta: Record<string, unknown> = { resourceVersion: rv };
  const last = page[page.length - 1];
  if (more && last !== undefined) meta.continue = encodeContinue(rv, last[0]);
  await body.head(`${kind}List`, apiVersion, meta);
  await body.items(page.map(([, raw]) => raw));
  body.end();
}
