import { qualifiedResource } from '../../src/kube/status.ts';
import type { ResponseRecorder } from '../hub-request.ts';
import { createBodyDecoder } from './body-decoder.ts';
import { BufferedBody } from './buffered-body.ts';
import { apiVersionOf } from './keys.ts';
import { listFingerprint, type ListFingerprint } from './list-fingerprint.ts';
import { ListItems, STREAMED_LIST_BYTES } from './list-items.ts';
import { ListStreamParser } from './list-stream.ts';
import type { RecorderContext } from './object-recorders.ts';
import { prepareObject } from './prepared-object.ts';
import type { CompiledScope } from './scope.ts';

/** How long the pages of a chunked (`limit`/`continue`) list may take to arrive. */
const PAGE_TTL_MS = 5 * 60_000;

interface PendingPages {
  items: ListItems;
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

  /** The items of the pages before this one (new ones for a first page); undefined: a page out of order. */
  take(
    key: string,
    continueParam: string,
    now: number,
    fresh: () => ListItems,
  ): ListItems | undefined {
    for (const [k, p] of this.pending) {
      if (now - p.startedAt <= PAGE_TTL_MS) continue;
      p.items.discard();
      this.pending.delete(k);
    }
    const p = this.pending.get(key);
    this.pending.delete(key);
    if (continueParam === '') {
      p?.items.discard();
      return fresh();
    }
    if (p === undefined || p.expect !== continueParam) {
      p?.items.discard();
      return undefined;
    }
    return p.items;
  }

  park(key: string, items: ListItems, expect: string, now: number): void {
    this.pending.get(key)?.items.discard();
    this.pending.set(key, { items, expect, startedAt: now });
  }
}

/**
 * Records one LIST answer; the scope is replaced only from a complete, valid
 * document. The answer is parsed item by item as it streams (list-stream.ts)
 * while the proxy relays it; a body cut short, invalid JSON or an item that
 * is not an object changes nothing in the cache.
 */
export function listRecorder(
  ctx: RecorderContext,
  scope: CompiledScope,
  continueParam: string,
  pages: ListPages,
  streamedListBytes = STREAMED_LIST_BYTES,
): ResponseRecorder {
  // Built for a log line or a list that is parsed, not for every repeated LIST.
  const what = () => `list ${qualifiedResource(ctx.ref)} (${scope.id})`;
  const pageKey = () =>
    `${ctx.component}\u0000${apiVersionOf(ctx.ref)}\u0000${ctx.ref.resource}\u0000${scope.id}`;
  const identity = ctx.contentEncoding === undefined || ctx.contentEncoding === 'identity';
  const large = identity && (ctx.contentLength ?? 0) > streamedListBytes;
  const last =
    continueParam === '' && !large
      ? ctx.store.lastListBody(ctx.component, ctx.ref, scope.id)
      : undefined;
  let held: BufferedBody | undefined = large
    ? undefined
    : new BufferedBody(undefined, {
        expected: last,
        contentLength: identity ? ctx.contentLength : undefined,
      });
  let heldBytes = 0;
  let parsing: { parser: ListStreamParser; items: ListItems } | undefined;
  /** Set once the answer cannot be recorded; later bytes are ignored. */
  let failure: string | undefined;

  /** Logged once: a broken answer from upstream is worth a warning, a cut or aborted one is not. */
  const fail = (why: string, loud: boolean): void => {
    if (failure !== undefined) return;
    failure = why;
    held = undefined;
    parsing?.items.discard();
    parsing = undefined;
    if (loud) {
      ctx.log.warn(
        { component: ctx.component, what: what(), err: why },
        'upstream list not recorded: the cache keeps its previous state',
      );
    } else {
      ctx.log.debug({ what: what(), err: why }, 'list not recorded');
    }
  };

  const startParsing = (): boolean => {
    const items = pages.take(
      pageKey(),
      continueParam,
      ctx.clock(),
      () => new ListItems(ctx.store, streamedListBytes),
    );
    if (items === undefined) {
      fail('list page without its earlier pages', false);
      return false;
    }
    const parser: ListStreamParser = new ListStreamParser((value, i) => {
      const listKind = parser.kind ?? '';
      const prepared = prepareObject(ctx.ref, value, {
        kind: listKind.endsWith('List') ? listKind.slice(0, -4) : undefined,
        apiVersion: parser.apiVersion ?? apiVersionOf(ctx.ref),
      });
      if (prepared instanceof Error) throw new Error(`item ${i}: ${prepared.message}`);
      items.add(prepared);
    });
    parsing = { parser, items };
    return true;
  };

  const parse = (bytes: Buffer): void => {
    if (parsing === undefined) return;
    try {
      parsing.parser.write(bytes);
    } catch (err) {
      fail(err instanceof Error ? err.message : String(err), true);
    }
  };

  const decoder = createBodyDecoder(ctx.contentEncoding, (chunk) => {
    if (failure !== undefined || chunk.length === 0) return;
    if (held !== undefined) {
      heldBytes += chunk.length;
      if (heldBytes <= streamedListBytes) {
        held.write(chunk);
        return;
      }
      // Too large to hold: what was held is parsed, and the rest as it comes.
      const head = held.takeSoFar();
      held = undefined;
      if (head instanceof Error) return fail(head.message, false);
      if (!startParsing()) return;
      parse(head);
    } else if (parsing === undefined && !startParsing()) {
      return;
    }
    parse(chunk);
  });
  if (decoder instanceof Error) fail(decoder.message, false);

  const finish = async (): Promise<void> => {
    let fingerprint: ListFingerprint | undefined;
    if (held !== undefined) {
      const bytes = await held.finish();
      held = undefined;
      if (bytes instanceof Error) return fail(bytes.message, false);
      // The same one-page answer again is recognised without being parsed.
      fingerprint = continueParam === '' ? listFingerprint(bytes) : undefined;
      if (
        fingerprint !== undefined &&
        ctx.store.noteUnchangedList(ctx.component, ctx.ref, scope.id, fingerprint)
      ) {
        return;
      }
      if (!startParsing()) return;
      parse(bytes);
    } else if (parsing === undefined && failure === undefined && !startParsing()) {
      return;
    }
    const current = parsing;
    if (current === undefined || failure !== undefined) return;
    const envelope = current.parser.end();
    if (envelope instanceof Error) return fail(envelope.message, true);
    const listKind = envelope.kind ?? '';
    if (envelope.continue !== '') {
      pages.park(pageKey(), current.items, envelope.continue, ctx.clock());
      return;
    }
    try {
      await current.items.replace(ctx.component, ctx.ref, {
        scope,
        rv: envelope.resourceVersion,
        kind: listKind.endsWith('List') ? listKind.slice(0, -4) : null,
        fingerprint: envelope.continue === '' && continueParam === '' ? fingerprint : undefined,
      });
    } catch (err) {
      ctx.log.warn(
        { component: ctx.component, what: what(), err: String(err) },
        'upstream list not recorded: the cache keeps its previous state',
      );
    }
  };

  return {
    write(chunk) {
      if (failure === undefined && !(decoder instanceof Error)) decoder.write(chunk);
    },
    async end() {
      if (failure !== undefined || decoder instanceof Error) return;
      try {
        await decoder.end();
      } catch (err) {
        return fail(`body could not be decoded: ${String(err)}`, false);
      }
      await finish();
    },
    abort(reason) {
      if (!(decoder instanceof Error)) decoder.abort();
      fail(reason, false);
    },
  };
}
