import { afterEach, describe, expect, it, vi } from 'vitest';
import { VersionWaiters } from './version-waiters.ts';

afterEach(() => {
  vi.useRealTimers();
});

describe('VersionWaiters', () => {
  it('wakes a read once its version is reached, and says false when the time runs out first', async () => {
    vi.useFakeTimers();
    const waiters = new VersionWaiters<bigint>();
    const reached = waiters.wait(5n, 3n, 3000);
    const late = waiters.wait(9n, 3n, 3000);
    waiters.reached(4n);
    waiters.reached(5n);
    expect(await reached).toBe(true);
    await vi.advanceTimersByTimeAsync(3000);
    expect(await late).toBe(false);
    expect(await waiters.wait(2n, 3n, 3000)).toBe(true);
  });

  it('cancel ends every wait with false', async () => {
    const waiters = new VersionWaiters<number>();
    const w = waiters.wait(10, 1, 60_000);
    waiters.cancel();
    expect(await w).toBe(false);
  });
});
