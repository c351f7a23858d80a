/**
 * How Go's net/url reads a request target, which is what kube-apiserver sees:
 * the path is percent-decoded once (a malformed escape fails the request),
 * the query is decoded pair by pair (a malformed pair is silently dropped).
 */

import { goQuote } from './go-text.ts';

const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const utf8Lenient = new TextDecoder('utf-8');

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

export type Unescaped = { ok: true; value: string } | { ok: false; error: string };

/**
 * Percent-decodes `s` as Go's url.unescape does. `plusIsSpace` is true for
 * query components. Bytes that do not form UTF-8 fail only when `strictUtf8`.
 */
function unescape(s: string, plusIsSpace: boolean, strictUtf8: boolean): Unescaped {
  if (!s.includes('%') && !(plusIsSpace && s.includes('+'))) return { ok: true, value: s };
  const chunks: Buffer[] = [];
  let literalStart = 0;
  const flushLiteral = (end: number): void => {
    // Literal characters are kept as their UTF-8 bytes, as a Go string holds them.
    if (end > literalStart) chunks.push(Buffer.from(s.slice(literalStart, end), 'utf8'));
  };
  for (let i = 0; i < s.length;) {
    const c = s.charCodeAt(i);
    if (c === 0x25 /* % */) {
      const hi = i + 1 < s.length ? hexValue(s.charCodeAt(i + 1)) : -1;
      const lo = i + 2 < s.length ? hexValue(s.charCodeAt(i + 2)) : -1;
      if (hi < 0 || lo < 0) {
        // Go reports at most the three characters starting at the bad '%'.
        return { ok: false, error: `invalid URL escape ${goQuote(s.slice(i, i + 3))}` };
      }
      flushLiteral(i);
      chunks.push(Buffer.of(hi * 16 + lo));
      i += 3;
      literalStart = i;
    } else if (c === 0x2b /* + */ && plusIsSpace) {
      flushLiteral(i);
      chunks.push(Buffer.of(0x20));
      i += 1;
      literalStart = i;
    } else {
      i += 1;
    }
  }
  flushLiteral(s.length);
  const raw = Buffer.concat(chunks);
  if (!strictUtf8) return { ok: true, value: utf8Lenient.decode(raw) };
  try {
    return { ok: true, value: utf8Strict.decode(raw) };
  } catch {
    return { ok: false, error: 'percent-encoded bytes are not valid UTF-8' };
  }
}

/** One path segment (or a whole path) decoded as Go's url.PathUnescape. */
export function unescapePath(s: string): Unescaped {
  return unescape(s, false, true);
}

/**
 * url.ParseQuery: `&`-separated pairs, `+` is a space, a pair with a bad
 * escape or a `;` is skipped (Go 1.17+), first value of a key comes first.
 */
export function parseQuery(rawQuery: string): Map<string, string[]> {
  const values = new Map<string, string[]>();
  if (rawQuery === '') return values;
  for (const pair of rawQuery.split('&')) {
    if (pair === '' || pair.includes(';')) continue;
    const eq = pair.indexOf('=');
    const key = unescape(eq < 0 ? pair : pair.slice(0, eq), true, false);
    const value = unescape(eq < 0 ? '' : pair.slice(eq + 1), true, false);
    if (!key.ok || !value.ok) continue;
    const list = values.get(key.value);
    if (list === undefined) values.set(key.value, [value.value]);
    else list.push(value.value);
  }
  return values;
}
