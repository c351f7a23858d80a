import { z } from 'zod';

/**
 * The hub's own `continue` token for offline lists: the list's
 * resourceVersion and the last object id returned, base64 like the
 * apiserver's (clients treat it as opaque).
 */
const tokenSchema = z.object({ v: z.literal('edgebox.io/v1'), rv: z.string(), start: z.string() });
export type ContinueToken = z.infer<typeof tokenSchema>;

export function encodeContinue(rv: string, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'edgebox.io/v1', rv, start })).toString('base64url');
}

/** kube-apiserver's own token (base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"..."}`). */
const upstreamTokenSchema = z.object({ v: z.literal('meta.k8s.io/v1') });

/**
 * A token of the other side: kube-apiserver's, offline, or the hub's, once
 * upstream is back. Pages of one list cannot come from both, so such a
 * request gets what kube-apiserver answers for a continue it can no longer
 * serve: 410 Expired, on which client-go's pager and reflector start the list
 * again (a 400 would fail them).
 */
export class ForeignContinueError extends Error {}

export const FOREIGN_CONTINUE_MESSAGE =
  'The provided continue parameter is too old to display a consistent list result. ' +
  'You can start a new list without the continue parameter.';

function tokenJson(text: string): unknown {
  try {
    return JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

export function decodeContinue(text: string): ContinueToken | Error {
  const json = tokenJson(text);
  if (json === undefined) {
    return new Error(
      `continue key is not valid: illegal base64 data or JSON in ${JSON.stringify(text)}`,
    );
  }
  const parsed = tokenSchema.safeParse(json);
  if (parsed.success) return parsed.data;
  if (upstreamTokenSchema.safeParse(json).success) {
    return new ForeignContinueError(FOREIGN_CONTINUE_MESSAGE);
  }
  return new Error('continue key is not valid: not issued by this server');
}

/** Whether `text` is a continue token the hub issued (so kube-apiserver cannot continue it). */
export function isHubContinue(text: string): boolean {
  // Most lists have none: spares the JSON.parse exception of an empty token.
  if (text === '') return false;
  return tokenSchema.safeParse(tokenJson(text)).success;
}
