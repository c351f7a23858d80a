import { z } from 'zod';
import { qualifiedResource } from '../../src/kube/status.ts';
import type { ResponseRecorder } from '../hub-request.ts';
import { parseJson, wholeBodyRecorder } from './buffered-body.ts';
import { apiVersionOf } from './keys.ts';
import { listFingerprint } from './list-fingerprint.ts';
import { bufferedBody, type RecorderContext } from './object-recorders.ts';
import { prepareObject, type PreparedObject } from './prepared-object.ts';
import type { CompiledScope } from './scope.ts';

const listSchema = z.looseObject({
  kind: z.string().optional(),
  apiVersion: z.string().optional(),
  metadata: z
    .looseObject({ resourceVersion: z.string().optional(), continue: z.string().optional() })
    .optional(),
  items: z.array(z.unknown()).nullable(),
});

/** How long the pages of a chunked (`limit`/`continue`) list may take to arrive. */
const PAGE_TTL_MS = 5 * 60_000;

interface PendingPages {
  items: PreparedObject[];
  /** the `continue` token the next page must be asked with */
  expect: string;
  startedAt: number;
}

/**
 * Pages of chunked lists in progress. A scope is replaced only when its last
 * page arrives; a lost or out-of-order page discards the whole list.
 */
export class ListPages {
  private readonly pending = new Map<string, PendingPages>();

  take(key: string, continueParam: string, now: number): PreparedObject[] | undefined {
    for (const [k, p] of this.pending) if (now - p.startedAt > PAGE_TTL_MS) this.pending.delete(k);
    const p = this.pending.get(key);
    this.pending.delete(key);
    if (continueParam === '') return [];
    if (p === undefined || p.expect !== continueParam) return undefined;
    return p.items;
  }

  park(key: string, items: PreparedObject[], expect: string, now: number): void {
    this.pending.set(key, { items, expect, startedAt: now });
  }
}

/** Records one LIST answer; the scope is replaced only from a complete, valid document. */
export function listRecorder(
  ctx: RecorderContext,
  scope: CompiledScope,
  continueParam: string,
  pages: ListPages,
): ResponseRecorder {
  // Built for a log line or a list that is parsed, not for every repeated LIST.
  const what = () => `list ${qualifiedResource(ctx.ref)} (${scope.id})`;
  const last =
    continueParam === '' ? ctx.store.lastListBody(ctx.component, ctx.ref, scope.id) : undefined;
  return wholeBodyRecorder(
    bufferedBody(ctx, last),
    (why) => ctx.log.debug({ what: what(), err: why }, 'list not recorded'),
    async (bytes) => {
      // The same one-page answer again is recognised without being parsed.
      const fingerprint = continueParam === '' ? listFingerprint(bytes) : undefined;
      if (
        fingerprint !== undefined &&
        ctx.store.noteUnchangedList(ctx.component, ctx.ref, scope.id, fingerprint)
      ) {
        return;
      }
      try {
        const parsed = listSchema.safeParse(parseJson(bytes));
        if (!parsed.success) throw new Error(`not a list: ${parsed.error.issues[0]?.message}`);
        const list = parsed.data;
        const listKind = list.kind ?? '';
        const kind = listKind.endsWith('List') ? listKind.slice(0, -4) : undefined;
        const identity = { kind, apiVersion: list.apiVersion ?? apiVersionOf(ctx.ref) };
        const items: PreparedObject[] = [];
        for (const [i, item] of (list.items ?? []).entries()) {
          const prepared = prepareObject(ctx.ref, item, identity);
          if (prepared instanceof Error) throw new Error(`item ${i}: ${prepared.message}`);
          items.push(prepared);
        }
        const now = ctx.clock();
        const pageKey = `${ctx.component}\u0000${apiVersionOf(ctx.ref)}\u0000${ctx.ref.resource}\u0000${scope.id}`;
        const earlier = pages.take(pageKey, continueParam, now);
        if (earlier === undefined) {
          ctx.log.debug({ what: what() }, 'list page without its earlier pages: not recorded');
          return;
        }
        const all = earlier.length === 0 ? items : earlier.concat(items);
        const next = list.metadata?.continue ?? '';
        if (next !== '') {
          pages.park(pageKey, all, next, now);
          return;
        }
        await ctx.store.replaceList(ctx.component, ctx.ref, {
          scope,
          rv: list.metadata?.resourceVersion ?? '',
          items: all,
          kind: kind ?? null,
          fingerprint,
        });
      } catch (err) {
        ctx.log.warn(
          { component: ctx.component, what: what(), err: String(err) },
          'upstream list not recorded: the cache keeps its previous state',
        );
      }
    },
  );
}
