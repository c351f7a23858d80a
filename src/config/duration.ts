import { z } from 'zod';

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go `time.ParseDuration` string ("300ms", "1h30m", "0") into
 * milliseconds. Kubernetes flags and annotations use this syntax, so we do too.
 * Returns an Error (not a throw) describing what is wrong.
 */
export function parseGoDuration(text: string): number | Error {
  const s = text;
  if (s === '0' || s === '+0' || s === '-0') return 0;
  const m = /^([+-]?)((?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|s|m|h))+$/.exec(s);
  if (m === null) {
    return new Error(
      `invalid duration ${JSON.stringify(text)}: expected a Go duration such as 300ms, 5s, 1h30m`,
    );
  }
  let total = 0;
  for (const part of s.matchAll(/((?:\d+(?:\.\d*)?|\.\d+))(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(part[1]) * (UNIT_MS[part[2] ?? ''] ?? 0);
  }
  return m[1] === '-' ? -total : total;
}

/** Formats milliseconds as Go prints a duration ("1h0m0s", "5s", "300ms"). */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  const sign = ms < 0 ? '-' : '';
  let rest = Math.abs(ms);
  if (rest < 1000) return `${sign}${rest}ms`;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const s = rest / 1000;
  if (h > 0) return `${sign}${h}h${m}m${s}s`;
  if (m > 0) return `${sign}${m}m${s}s`;
  return `${sign}${s}s`;
}

/** A zod schema for a non-negative Go duration given as a string (or milliseconds as a number). */
export const durationSchema = z
  .union([z.number().nonnegative(), z.string()])
  .transform((v, ctx) => {
    if (typeof v === 'number') return v;
    const ms = parseGoDuration(v);
    if (ms instanceof Error) {
      ctx.addIssue({ code: 'custom', message: ms.message });
      return z.NEVER;
    }
    if (ms < 0) {
      ctx.addIssue({
        code: 'custom',
        message: `duration ${JSON.stringify(v)} must not be negative`,
      });
      return z.NEVER;
    }
    return ms;
  });
