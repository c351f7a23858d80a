import type { Logger } from '../../src/log.ts';
import { qualifiedResource } from '../../src/kube/status.ts';
import type { ResponseRecorder } from '../hub-request.ts';
import type { CacheStore } from './cache-store.ts';
import { BufferedBody, parseJson, wholeBodyRecorder } from './buffered-body.ts';
import { apiVersionOf, objectId, type ResourceRef } from './keys.ts';
import { prepareObject } from './prepared-object.ts';
import { tokenResponseSchema } from './token-key.ts';

export interface RecorderContext {
  store: CacheStore;
  log: Logger;
  component: string;
  ref: ResourceRef;
  contentEncoding: string | undefined;
  contentLength?: number | undefined;
  clock: () => number;
}

/** Collects an answer's body; `expected`: the bytes it most likely repeats (compared, not copied). */
export function bufferedBody(ctx: RecorderContext, expected?: Buffer): BufferedBody {
  return new BufferedBody(ctx.contentEncoding, { expected, contentLength: ctx.contentLength });
}

/** The body without the newline the apiserver ends a JSON answer with. */
function trimTrailingWhitespace(bytes: Buffer): Buffer {
  let end = bytes.length;
  while (end > 0) {
    const b = bytes[end - 1];
    if (b !== 0x0a && b !== 0x0d && b !== 0x20 && b !== 0x09) break;
    end--;
  }
  return end === bytes.length ? bytes : bytes.subarray(0, end);
}

/**
 * A single object answer (GET, or the object a node-status/Lease write
 * returned); `id` is the object the request named, when it named one. The
 * object is stored as upstream sent it, so the next identical answer is
 * recognised by its bytes without being parsed again. `what` names the
 * answer in log lines: built only for one, not for every recorded read.
 */
export function objectRecorder(
  ctx: RecorderContext,
  what: () => string,
  id?: string,
): ResponseRecorder {
  const stored =
    id === undefined ? undefined : ctx.store.objectToCompare(ctx.component, ctx.ref, id);
  return wholeBodyRecorder(
    bufferedBody(ctx, stored?.bytes),
    (why) => ctx.log.debug({ what: what(), err: why }, 'not recording response'),
    async (bytes) => {
      if (bytes === stored?.bytes && ctx.store.noteUnchangedObject(stored)) return;
      const raw = trimTrailingWhitespace(bytes);
      try {
        const value = parseJson(raw);
        const kind = (value as { kind?: unknown }).kind;
        const prepared = prepareObject(
          ctx.ref,
          value,
          { kind: typeof kind === 'string' ? kind : undefined, apiVersion: apiVersionOf(ctx.ref) },
          raw,
        );
        if (prepared instanceof Error) throw prepared;
        await ctx.store.upsertObject(
          ctx.component,
          ctx.ref,
          prepared,
          typeof kind === 'string' ? kind : null,
        );
      } catch (err) {
        ctx.log.warn(
          { component: ctx.component, what: what(), err: String(err) },
          'upstream answer not recorded: the cache keeps its previous state',
        );
      }
    },
  );
}

/** A GET that upstream answered 404: the object no longer exists for this component. */
export function notFoundRecorder(
  ctx: RecorderContext,
  namespace: string,
  name: string,
): ResponseRecorder {
  let aborted = false;
  return {
    write: () => undefined,
    abort: () => {
      aborted = true;
    },
    async end() {
      if (aborted) return;
      try {
        await ctx.store.deleteObject(ctx.component, ctx.ref, objectId(namespace, name));
      } catch (err) {
        ctx.log.warn(
          {
            component: ctx.component,
            resource: qualifiedResource(ctx.ref),
            name,
            err: String(err),
          },
          'dropping a cached object upstream no longer has failed',
        );
      }
    },
  };
}

/**
 * A TokenRequest answer. The token is stored under the component, service
 * account, audiences and bound object (tokenStoreKey) and never logged.
 */
export function tokenRecorder(ctx: RecorderContext, storeKey: string): ResponseRecorder {
  return wholeBodyRecorder(
    bufferedBody(ctx),
    () => undefined,
    async (bytes) => {
      let text: string;
      let expirationTimestamp: string;
      try {
        text = bytes.toString('utf8');
        const parsed = tokenResponseSchema.safeParse(JSON.parse(text));
        if (!parsed.success) throw new Error('answer has no status.token/expirationTimestamp');
        expirationTimestamp = parsed.data.status.expirationTimestamp;
      } catch (err) {
        // The message is built without the body: it holds a credential.
        ctx.log.warn(
          {
            component: ctx.component,
            err: err instanceof SyntaxError ? 'invalid JSON' : String(err),
          },
          'TokenRequest answer not recorded',
        );
        return;
      }
      try {
        await ctx.store.putToken(storeKey, {
          response: text,
          expirationTimestamp,
          storedAt: new Date(ctx.clock()).toISOString(),
        });
      } catch (err) {
        ctx.log.warn({ component: ctx.component, err: String(err) }, 'storing a token failed');
      }
    },
  );
}
