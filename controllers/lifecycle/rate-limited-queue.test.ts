import { describe, expect, it } from 'vitest';
import { FakeClock } from '../clock.ts';
import { RateLimitedTimedQueue, type TimedValue, type TryResult } from './rate-limited-queue.ts';
import { TokenBucket } from './token-bucket.ts';

const SECOND = 1000;

/** Offers the queue a token every 100 ms (NodeEvictionPeriod) until `untilMs`; returns when each value was processed. */
async function drive(
  clock: FakeClock,
  queue: RateLimitedTimedQueue,
  untilMs: number,
  fn: (v: TimedValue) => TryResult = () => ({ done: true, retryAfterMs: 0 }),
): Promise<[string, number][]> {
  const processed: [string, number][] = [];
  for (let t = clock.now(); t <= untilMs; t += 100) {
    clock.setNow(t);
    await queue.tryProcess((v) => {
      processed.push([v.value, clock.now()]);
      return Promise.resolve(fn(v));
    });
  }
  return processed;
}

describe('TokenBucket (flowcontrol.NewTokenBucketRateLimiter, burst 1)', () => {
  it('starts full and then lets one through every 1/qps seconds', () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(0.1, 1, clock);
    expect(bucket.tryAccept()).toBe(true);
    expect(bucket.tryAccept()).toBe(false);
    clock.setNow(clock.now() + 9_999);
    expect(bucket.tryAccept()).toBe(false);
    clock.setNow(clock.now() + 1);
    expect(bucket.tryAccept()).toBe(true);
    // Burst 1: a long quiet spell saves up one token, not many.
    clock.setNow(clock.now() + 3_600 * SECOND);
    expect(bucket.tryAccept()).toBe(true);
    expect(bucket.tryAccept()).toBe(false);
  });

  it('refuses a rate that is not positive', () => {
    expect(() => new TokenBucket(0, 1, new FakeClock())).toThrow(/positive rate, got 0/);
  });
});

describe('RateLimitedTimedQueue', () => {
  it.each([
    [0.1, 10 * SECOND],
    [0.01, 100 * SECOND],
    [1, SECOND],
  ])('at %f/s processes one value every %i ms', async (qps, gap) => {
    const clock = new FakeClock();
    const queue = new RateLimitedTimedQueue(qps, clock);
    const start = clock.now();
    for (const name of ['a', 'b', 'c', 'd']) queue.add(name, `uid-${name}`);
    const processed = await drive(clock, queue, start + 3 * gap);
    expect(processed).toEqual([
      ['a', start],
      ['b', start + gap],
      ['c', start + 2 * gap],
      ['d', start + 3 * gap],
    ]);
    expect(queue.length).toBe(0);
  });

  it('processes nothing at rate 0', async () => {
    const clock = new FakeClock();
    const queue = new RateLimitedTimedQueue(0, clock);
    queue.add('a', 'uid-a');
    expect(await drive(clock, queue, clock.now() + 3_600 * SECOND)).toEqual([]);
    expect(queue.qps).toBe(0);
  });

  it('keeps a processed value known until it is removed (one taint per outage)', async () => {
    const clock = new FakeClock();
    const queue = new RateLimitedTimedQueue(1, clock);
    expect(queue.add('a', 'uid')).toBe(true);
    expect(queue.add('a', 'uid')).toBe(false);
    await drive(clock, queue, clock.now());
    expect(queue.isQueued('a')).toBe(false);
    expect(queue.add('a', 'uid')).toBe(false);
    expect(queue.remove('a')).toBe(true);
    expect(queue.remove('a')).toBe(false);
    expect(queue.add('a', 'uid')).toBe(true);
    expect(queue.isQueued('a')).toBe(true);
  });

  it('retries a value that is not done once the wait it asked for is over', async () => {
    const clock = new FakeClock();
    const queue = new RateLimitedTimedQueue(10, clock);
    const start = clock.now();
    queue.add('a', 'uid-a');
    queue.add('b', 'uid-b');
    let failures = 1;
    const processed = await drive(clock, queue, start + SECOND, (v) =>
      v.value === 'a' && failures-- > 0
        ? { done: false, retryAfterMs: 450 }
        : { done: true, retryAfterMs: 0 },
    );
    expect(processed).toEqual([
      ['a', start],
      ['b', start + 100],
      ['a', start + 500],
    ]);
  });

  it('drains the new limiter when the old one had no token left, so a state change grants no extra taint', async () => {
    const clock = new FakeClock();
    const queue = new RateLimitedTimedQueue(0.1, clock);
    const start = clock.now();
    for (const name of ['a', 'b', 'c']) queue.add(name, name);
    await drive(clock, queue, start); // 'a' spends the only token
    queue.swapLimiter(0.01);
    expect(queue.qps).toBe(0.01);
    const processed = await drive(clock, queue, start + 200 * SECOND);
    expect(processed).toEqual([
      ['b', start + 100 * SECOND],
      ['c', start + 200 * SECOND],
    ]);
  });

  it('starts the new limiter full when the old one had a token to give', async () => {
    const clock = new FakeClock();
    const queue = new RateLimitedTimedQueue(0.1, clock);
    queue.swapLimiter(0.01);
    queue.add('a', 'a');
    expect(await drive(clock, queue, clock.now())).toEqual([['a', clock.now()]]);
  });

  it('stops at rate 0 and resumes after one full period when the rate comes back', async () => {
    const clock = new FakeClock();
    const queue = new RateLimitedTimedQueue(0.1, clock);
    const start = clock.now();
    queue.swapLimiter(0);
    queue.add('a', 'a');
    expect(await drive(clock, queue, start + 60 * SECOND)).toEqual([]);
    queue.swapLimiter(0.1);
    const resumed = clock.now();
    expect(await drive(clock, queue, resumed + 10 * SECOND)).toEqual([
      ['a', resumed + 10 * SECOND],
    ]);
  });
});
