import { z } from 'zod';
import { qualifiedResource } from '../../src/kube/status.ts';
import type { ResponseRecorder } from '../hub-request.ts';
import type { WatchEventInput } from './apply-rules.ts';
import { createBodyDecoder, type BodyDecoder } from './body-decoder.ts';
import { apiVersionOf } from './keys.ts';
import type { RecorderContext } from './object-recorders.ts';
import { ListItems, STREAMED_LIST_BYTES } from './list-items.ts';
import { prepareObject } from './prepared-object.ts';
import type { CompiledScope } from './scope.ts';

/**
 * The event envelope only: the object inside is validated once, by
 * prepareObject, instead of being copied by two schemas at 5,000 events/s.
 */
const watchEventSchema = z.object({
  type: z.enum(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR']),
  object: z.custom<Record<string, unknown>>(
    (v) => typeof v === 'object' && v !== null && !Array.isArray(v),
    'object must be a JSON object',
  ),
});

type WatchEvent = z.infer<typeof watchEventSchema>;
const WATCH_EVENT_TYPES: ReadonlySet<unknown> = new Set(watchEventSchema.shape.type.options);

/** watchEventSchema checked in place (zod copies); what it refuses goes through the schema, which says why. */
function decodeWatchEvent(value: unknown): WatchEvent | Error {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const { type, object } = value as Record<string, unknown>;
    if (
      WATCH_EVENT_TYPES.has(type) &&
      typeof object === 'object' &&
      object !== null &&
      !Array.isArray(object)
    ) {
      return value as WatchEvent;
    }
  }
  const ev = watchEventSchema.safeParse(value);
  return ev.success ? ev.data : new Error(ev.error.issues[0]?.message ?? 'malformed');
}

function resourceVersionOf(object: Record<string, unknown>): string {
  const metadata = object.metadata;
  if (typeof metadata !== 'object' || metadata === null) return '';
  const rv = (metadata as { resourceVersion?: unknown }).resourceVersion;
  return typeof rv === 'string' ? rv : '';
}

/** The BOOKMARK annotation that ends a watch-list's initial events. */
const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

function endsInitialEvents(object: Record<string, unknown>): boolean {
  const metadata = object.metadata as { annotations?: Record<string, unknown> } | undefined;
  return metadata?.annotations?.[INITIAL_EVENTS_END] === 'true';
}

const NEWLINE = 0x0a;
const CLOSE_BRACE = 0x7d;

/**
 * The object's bytes inside an event line as the apiserver encodes it,
 * `{"type":"<T>","object":<object>}`, so the recorder stores them without
 * serialising the object again; undefined for any other layout.
 */
function receivedObject(line: Buffer, type: string): Buffer | undefined {
  const head = `{"type":"${type}","object":`;
  let end = line.length;
  while (end > 0 && (line[end - 1] === 0x20 || line[end - 1] === 0x0d)) end--;
  if (end <= head.length + 1 || line[end - 1] !== CLOSE_BRACE) return undefined;
  if (line.toString('latin1', 0, head.length) !== head) return undefined;
  // A view, not a copy: the chunk lives only until its batch is written.
  return line.subarray(head.length, end - 1);
}

/** A watch event as recorded; a BOOKMARK may end a watch-list's initial events. */
type RecordedEvent = WatchEventInput & { initialEventsEnd?: boolean };

/**
 * Applies a watch stream's events as they arrive. Each chunk's complete lines
 * become one store operation; the store's group commit folds whatever queued
 * up while the previous batch was syncing into the next batch. ERROR events
 * (e.g. 410 Expired) are not applied; BOOKMARKs advance the scope's version.
 *
 * A watch-list (`sendInitialEvents=true`, what newer clients use instead of
 * a LIST) is a list first: its initial events, up to the BOOKMARK annotated
 * `k8s.io/initial-events-end`, are held and then replace the scope in one
 * atomic step, as a LIST's items do, so an object deleted upstream between
 * two watch-lists is gone from the cache too; beyond `streamedListBytes` they
 * are staged in the store as they come, as a large LIST's are. A stream cut
 * before that bookmark changes nothing.
 */
export function watchRecorder(
  ctx: RecorderContext,
  scope: CompiledScope,
  opts: { initialEvents?: boolean; streamedListBytes?: number } = {},
): ResponseRecorder {
  const what = `watch ${qualifiedResource(ctx.ref)} (${scope.id})`;
  let partial: Buffer | undefined;
  let last: Promise<void> = Promise.resolve();
  let failed = false;
  let kind: string | null = null;
  /** The watch-list's initial set while it arrives; undefined once replaced (or for a plain watch). */
  let initial: ListItems | undefined =
    opts.initialEvents === true
      ? new ListItems(ctx.store, opts.streamedListBytes ?? STREAMED_LIST_BYTES)
      : undefined;

  const logFailure = (err: unknown): void => {
    ctx.log.warn({ component: ctx.component, what, err: String(err) }, 'watch events not recorded');
  };

  const applyEvents = (events: WatchEventInput[]): void => {
    if (events.length === 0) return;
    last = ctx.store
      .applyWatchEvents(ctx.component, ctx.ref, scope, events, kind)
      .catch(logFailure);
  };

  const apply = (events: RecordedEvent[]): void => {
    let from = 0;
    for (let i = 0; i < events.length && initial !== undefined; i++) {
      const ev = events[i] as RecordedEvent;
      from = i + 1;
      if (ev.type === 'BOOKMARK' && ev.initialEventsEnd === true) {
        const items = initial;
        initial = undefined;
        last = items.replace(ctx.component, ctx.ref, { scope, rv: ev.rv, kind }).catch(logFailure);
      } else if (ev.object !== undefined) {
        // An object repeated before the end is applied twice; the newer version wins.
        if (ev.type !== 'DELETED') {
          if (ev.type !== 'BOOKMARK') initial.add(ev.object);
        } else if (!initial.remove(ev.object.id)) {
          // The apiserver sends only ADDED before the end: a staged list cannot take one back.
          initial.discard();
          initial = undefined;
          failed = true;
          logFailure('an initial event deleted an object already staged');
          return;
        }
      }
    }
    applyEvents(from === 0 ? events : events.slice(from));
  };

  const parseLine = (line: Buffer): RecordedEvent | undefined => {
    let value: unknown;
    try {
      value = JSON.parse(line.toString('utf8'));
    } catch {
      ctx.log.warn(
        { component: ctx.component, what },
        'watch event is not JSON: stream no longer recorded',
      );
      failed = true;
      return undefined;
    }
    const ev = decodeWatchEvent(value);
    if (ev instanceof Error) {
      ctx.log.debug({ what, err: ev.message }, 'skipping malformed watch event');
      return undefined;
    }
    const rv = resourceVersionOf(ev.object);
    if (ev.type === 'ERROR') return undefined;
    if (ev.type === 'BOOKMARK') {
      return endsInitialEvents(ev.object)
        ? { type: 'BOOKMARK', rv, initialEventsEnd: true }
        : { type: 'BOOKMARK', rv };
    }
    const objectKind = typeof ev.object.kind === 'string' ? ev.object.kind : undefined;
    if (objectKind !== undefined) kind = objectKind;
    const prepared = prepareObject(
      ctx.ref,
      ev.object,
      { kind: objectKind, apiVersion: apiVersionOf(ctx.ref) },
      receivedObject(line, ev.type),
    );
    if (prepared instanceof Error) {
      ctx.log.debug(
        { what, err: prepared.message },
        'skipping watch event without a usable object',
      );
      return undefined;
    }
    return { type: ev.type, rv, object: prepared };
  };

  const onData = (chunk: Buffer): void => {
    if (failed) return;
    const events: RecordedEvent[] = [];
    let start = 0;
    if (partial !== undefined) {
      const nl = chunk.indexOf(NEWLINE);
      if (nl < 0) {
        partial = Buffer.concat([partial, chunk]);
        return;
      }
      // Only the line cut between two chunks is copied together, not the whole chunk.
      const line = Buffer.concat([partial, chunk.subarray(0, nl)]);
      partial = undefined;
      const ev = line.length > 0 ? parseLine(line) : undefined;
      if (ev !== undefined) events.push(ev);
      start = nl + 1;
    }
    for (let nl = chunk.indexOf(NEWLINE, start); nl >= 0 && !failed;) {
      if (nl > start) {
        const ev = parseLine(chunk.subarray(start, nl));
        if (ev !== undefined && !failed) events.push(ev);
      }
      start = nl + 1;
      nl = chunk.indexOf(NEWLINE, start);
    }
    if (!failed && start < chunk.length) partial = Buffer.from(chunk.subarray(start));
    apply(events);
  };

  const decoder: BodyDecoder | Error = createBodyDecoder(ctx.contentEncoding, (chunk) => {
    try {
      onData(chunk);
    } catch (err) {
      failed = true;
      ctx.log.warn({ what, err: String(err) }, 'watch recording stopped');
    }
  });
  if (decoder instanceof Error) failed = true;

  return {
    // Events hold views of their chunk until their batch is written.
    write(chunk) {
      if (!failed && !(decoder instanceof Error)) decoder.write(chunk);
    },
    async end() {
      if (!(decoder instanceof Error)) await decoder.end().catch(() => undefined);
      // A final event without its newline is still complete if it parses.
      if (!failed && partial !== undefined && partial.length > 0) {
        const ev = parseLine(partial);
        partial = undefined;
        if (ev !== undefined) apply([ev]);
      }
      await last;
      // A watch-list that ended before its initial events did records nothing.
      initial?.discard();
      initial = undefined;
    },
    abort() {
      // Events already delivered are complete units and stay; a cut line is dropped.
      partial = undefined;
      failed = true;
      initial?.discard();
      initial = undefined;
      if (!(decoder instanceof Error)) decoder.abort();
    },
  };
}
