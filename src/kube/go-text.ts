/**
 * The few Go text rules the apiserver's messages and parsers depend on
 * (fmt's %q and %#v, strconv.ParseInt, strings.EqualFold), so that what we
 * parse and print matches kube-apiserver byte for byte.
 */

// unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

const SHORT_ESCAPES: ReadonlyMap<string, string> = new Map([
  ['\x07', '\\a'],
  ['\b', '\\b'],
  ['\f', '\\f'],
  ['\n', '\\n'],
  ['\r', '\\r'],
  ['\t', '\\t'],
  ['\v', '\\v'],
  ['"', '\\"'],
  ['\\', '\\\\'],
]);

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

/** Go's strconv.Quote, which fmt's %q uses for strings. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const short = SHORT_ESCAPES.get(ch);
    if (short !== undefined) {
      out += short;
      continue;
    }
    const cp = ch.codePointAt(0) ?? 0xfffd;
    if (cp >= 0xd800 && cp <= 0xdfff) {
      // A lone surrogate is not valid UTF-8; Go prints invalid input as U+FFFD.
      out += '\\ufffd';
    } else if (PRINTABLE.test(ch)) {
      out += ch;
    } else if (cp < 0x80) {
      out += `\\x${hex(cp, 2)}`;
    } else if (cp < 0x10000) {
      out += `\\u${hex(cp, 4)}`;
    } else {
      out += `\\U${hex(cp, 8)}`;
    }
  }
  return `${out}"`;
}

/** fmt's %#v of a []string: `[]string{"a", "b"}`, or `[]string(nil)` for a nil slice. */
export function goStringSliceSyntax(values: readonly string[] | undefined): string {
  if (values === undefined) return '[]string(nil)';
  return `[]string{${values.map(goQuote).join(', ')}}`;
}

const DECIMAL_INT = /^[+-]?[0-9]+$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** strconv.ParseInt(s, 10, 64): the value, or undefined where Go returns an error. */
export function goParseInt64(s: string): bigint | undefined {
  if (!DECIMAL_INT.test(s)) return undefined;
  const value = BigInt(s);
  return value < INT64_MIN || value > INT64_MAX ? undefined : value;
}

/**
 * Whether a query value means false to apimachinery's Convert_Slice_string_To_bool:
 * only "0" and strings.EqualFold(v, "false") do. EqualFold folds U+017F (ſ) to 's'.
 */
export function goQueryBoolIsFalse(value: string): boolean {
  return value === '0' || value.replaceAll('\u017f', 's').toLowerCase() === 'false';
}

/** Go's len() of a string: its UTF-8 byte count. */
export function goByteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Go's string order (sort.Strings): UTF-8 byte order, i.e. code point order. */
export function compareGoStrings(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
