import { describe, expect, it } from 'vitest';
import { durationSchema, formatGoDuration, parseGoDuration } from './duration.ts';

describe('Go durations', () => {
  it.each([
    ['0', 0],
    ['5s', 5000],
    ['300ms', 300],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['2m3s', 123_000],
    ['1000us', 1],
    ['-5s', -5000],
  ])('parses %s', (text, ms) => {
    expect(parseGoDuration(text)).toBe(ms);
  });

  it.each(['', '5', 'abc', '5 s', ' 1h', '1h ', '1d', 's', '1h-5m'])(
    'rejects %j with a clear message',
    (text) => {
      const r = parseGoDuration(text);
      expect(r).toBeInstanceOf(Error);
      expect((r as Error).message).toContain('invalid duration');
    },
  );

  it.each([
    [0, '0s'],
    [300, '300ms'],
    [5000, '5s'],
    [3_600_000, '1h0m0s'],
    [5_430_000, '1h30m30s'],
  ])('formats %d ms as %s', (ms, text) => {
    expect(formatGoDuration(ms)).toBe(text);
  });

  it('schema accepts strings and numbers and refuses negatives', () => {
    expect(durationSchema.parse('2s')).toBe(2000);
    expect(durationSchema.parse(150)).toBe(150);
    expect(durationSchema.safeParse('-1s').success).toBe(false);
    expect(durationSchema.safeParse('soon').success).toBe(false);
  });
});
