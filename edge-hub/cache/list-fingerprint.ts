import { hash } from 'node:crypto';

/** Answers up to this size are kept whole: comparing them costs microseconds, hashing a hundred. */
const KEPT_LIST_BYTES = 64 * 1024;
/** Beyond this, the rare identical re-list is not worth hashing every list for. */
export const DIGESTED_LIST_BYTES = 4 * 1024 * 1024;

/** What recognises the same one-page LIST answer again without parsing it. */
export type ListFingerprint = { readonly body: Buffer } | { readonly digest: string };

export function listFingerprint(body: Buffer): ListFingerprint | undefined {
  if (body.length <= KEPT_LIST_BYTES) {
    // Kept for long: not a view into a larger buffer (a grown one, or Node's shared pool).
    if (body.length === body.buffer.byteLength) return { body };
    const own = Buffer.allocUnsafeSlow(body.length);
    body.copy(own);
    return { body: own };
  }
  if (body.length <= DIGESTED_LIST_BYTES) return { digest: hash('sha512-256', body, 'base64') };
  return undefined;
}

export function sameFingerprint(a: ListFingerprint, b: ListFingerprint): boolean {
  if ('body' in a) return 'body' in b && (a.body === b.body || a.body.equals(b.body));
  return 'digest' in b && a.digest === b.digest;
}
