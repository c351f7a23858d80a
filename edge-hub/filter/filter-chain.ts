import type { HubRequest } from '../hub-request.ts';
import { filterApplies, type KubeObject, type ResponseFilter } from './response-filter.ts';

/** What the filters make of one object's JSON: its new bytes, or undefined when dropped. */
export type ObjectRewrite = (raw: Buffer) => Buffer | undefined;

/**
 * The registered filters, less those `--disable-filters` names: asked once
 * per request which of them apply, by every path that answers it (upstream's
 * answers in remote/, the cache's in local/), so a client sees the same
 * objects online and offline.
 */
export class FilterChain {
  readonly #filters: readonly ResponseFilter[];

  constructor(filters: readonly ResponseFilter[], disabled: readonly string[] = []) {
    this.#filters = filters.filter((f) => !disabled.includes(f.name));
  }

  /** The filters' names, for status and logs. */
  names(): string[] {
    return this.#filters.map((f) => f.name);
  }

  /** The rewrite of this request's objects, or undefined when no filter applies. */
  for(hubReq: HubRequest): ObjectRewrite | undefined {
    const applying = this.#filters.filter((f) => filterApplies(f, hubReq.component, hubReq.info));
    if (applying.length === 0) return undefined;
    return (raw) => {
      let object: KubeObject | undefined;
      try {
        object = JSON.parse(raw.toString('utf8')) as KubeObject;
      } catch {
        return raw; // not an object the filters can read: passed on as upstream sent it
      }
      const before = JSON.stringify(object);
      for (const f of applying) {
        if (object === undefined) return undefined;
        object = f.rewrite(object);
      }
      if (object === undefined) return undefined;
      const after = JSON.stringify(object);
      // Unchanged objects keep their bytes as stored or served.
      return after === before ? raw : Buffer.from(after);
    };
  }
}

/**
 * A watch event as the filters leave it. An object the client must not see
 * is never ADDED; one that stops being visible is DELETED (the client drops
 * what it had); BOOKMARK and ERROR events pass untouched.
 */
export function rewriteEvent(
  rewrite: ObjectRewrite,
  type: string,
  raw: Buffer,
): { type: string; raw: Buffer } | undefined {
  if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return { type, raw };
  const rewritten = rewrite(raw);
  if (rewritten !== undefined) return { type, raw: rewritten };
  return type === 'ADDED' ? undefined : { type: 'DELETED', raw };
}

/** A JSON watch stream's whole lines (each an event), rewritten line by line. */
export function rewriteWatchLines(rewrite: ObjectRewrite, lines: Buffer): Buffer {
  const out: Buffer[] = [];
  let start = 0;
  while (start < lines.length) {
    let end = lines.indexOf(0x0a, start);
    if (end === -1) end = lines.length;
    const line = lines.subarray(start, end);
    start = end + 1;
    if (line.length === 0) continue;
    let event: { type?: unknown; object?: unknown };
    try {
      event = JSON.parse(line.toString('utf8')) as typeof event;
    } catch {
      out.push(line, NEWLINE); // not an event the filters can read: passed on as sent
      continue;
    }
    const type = typeof event.type === 'string' ? event.type : '';
    const result = rewriteEvent(rewrite, type, Buffer.from(JSON.stringify(event.object)));
    if (result === undefined) continue;
    out.push(
      Buffer.from(`{"type":${JSON.stringify(result.type)},"object":`),
      result.raw,
      EVENT_END,
    );
  }
  return Buffer.concat(out);
}

/** A whole JSON list body with each item rewritten (dropped items left out). */
export function rewriteListBody(rewrite: ObjectRewrite, body: Buffer): Buffer {
  let list: { items?: unknown };
  try {
    list = JSON.parse(body.toString('utf8')) as typeof list;
  } catch {
    return body;
  }
  if (!Array.isArray(list.items)) return body;
  const items: unknown[] = [];
  for (const item of list.items) {
    const rewritten = rewrite(Buffer.from(JSON.stringify(item)));
    if (rewritten !== undefined) items.push(JSON.parse(rewritten.toString('utf8')));
  }
  return Buffer.from(`${JSON.stringify({ ...list, items })}\n`);
}

const NEWLINE = Buffer.from('\n');
const EVENT_END = Buffer.from('}\n');
