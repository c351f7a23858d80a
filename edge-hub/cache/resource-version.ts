/**
 * The apiserver's resourceVersions are opaque strings to clients, but every
 * real apiserver (etcd3 storage) issues decimal revisions, so two decimal
 * versions compare as integers. Anything else cannot be ordered and is
 * accepted as newer, which is what a cache that cannot judge must do.
 */
const DECIMAL = /^[0-9]+$/;

function stripZeros(text: string): string {
  let i = 0;
  while (i < text.length - 1 && text.charCodeAt(i) === 48) i++;
  return text.slice(i);
}

/** <0, 0, >0 like a comparator, or undefined when either version is not decimal. */
export function compareResourceVersions(a: string, b: string): number | undefined {
  if (!DECIMAL.test(a) || !DECIMAL.test(b)) return undefined;
  const x = stripZeros(a);
  const y = stripZeros(b);
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** True when `incoming` may replace `stored`: strictly newer, or not comparable. */
export function supersedes(incoming: string, stored: string): boolean {
  const c = compareResourceVersions(incoming, stored);
  return c === undefined || c > 0;
}

/** True when `a` is known to be no newer than `b` (decimal and a <= b). */
export function notNewerThan(a: string, b: string): boolean {
  const c = compareResourceVersions(a, b);
  return c !== undefined && c <= 0;
}

/** The larger of two versions; a decimal one wins over one that cannot be compared. */
export function maxResourceVersion(a: string, b: string): string {
  if (a === '') return b;
  if (b === '') return a;
  const c = compareResourceVersions(a, b);
  if (c === undefined) return DECIMAL.test(a) ? a : b;
  return c >= 0 ? a : b;
}

/** The decimal version one past `rv` ('1' when rv is not decimal). */
export function nextResourceVersion(rv: string): string {
  if (!DECIMAL.test(rv)) return '1';
  return (BigInt(rv) + 1n).toString();
}
