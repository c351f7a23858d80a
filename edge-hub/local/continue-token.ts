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

export function decodeContinue(text: string): ContinueToken | Error {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return new Error(
      `continue key is not valid: illegal base64 data or JSON in ${JSON.stringify(text)}`,
    );
  }
  const parsed = tokenSchema.safeParse(json);
  return parsed.success
    ? parsed.data
    : new Error('continue key is not valid: not issued by this server');
}
