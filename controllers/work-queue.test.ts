import { describe, expect, it } from 'vitest';
import { FakeClock } from './clock.ts';
import { SimulatedTime } from './testing/simulated-time.ts';
import { KeyedWorkQueue, type WorkOutcome } from './work-queue.ts';
import { WorkTracker } from './work-tracker.ts';

function harness(handler: (key: string) => Promise<WorkOutcome>, workers = 2) {
  const clock = new FakeClock();
  const tracker = new WorkTracker((err) => {
    throw err;
  });
  const queue = new KeyedWorkQueue(workers, handler, (work) => tracker.run(work), clock);
  const time = new SimulatedTime(clock, () => tracker.idle());
  return { clock, queue, time };
}

describe('KeyedWorkQueue', () => {
  it('tries a failed key again after 5 ms, doubling per failure in a row, and starts over after a success', async () => {
    const attempts: number[] = [];
    let failures = 3;
    const { clock, queue, time } = harness(() => {
      attempts.push(clock.now());
      return Promise.resolve(failures-- > 0 ? 'retry' : 'done');
    });
    const start = clock.now();
    queue.add('default/web');
    await time.advance(1000);
    expect(attempts.map((t) => t - start)).toEqual([0, 5, 15, 35]);

    failures = 1;
    const again = clock.now();
    queue.add('default/web');
    await time.advance(1000);
    expect(attempts.slice(4).map((t) => t - again)).toEqual([0, 5]);
  });

  it('works a key once however often it is added while queued, and again if added while being worked', async () => {
    const seen: string[] = [];
    let release: (() => void) | undefined;
    // One worker, held by "slow": the others wait in the queue meanwhile.
    const { queue, time } = harness(async (key) => {
      seen.push(key);
      if (key === 'slow' && release === undefined) {
        await new Promise<void>((resolve) => (release = resolve));
      }
      return 'done';
    }, 1);
    queue.add('slow');
    queue.add('slow'); // while active: once more afterwards
    queue.add('a');
    queue.add('a');
    queue.add('b');
    release?.();
    await time.advance(0);
    expect(seen).toEqual(['slow', 'a', 'b', 'slow']);
  });

  it('drops pending retries when stopped', async () => {
    let calls = 0;
    const { queue, time } = harness(() => {
      calls++;
      return Promise.resolve('retry');
    });
    queue.add('k');
    await time.advance(1);
    queue.stop();
    await time.advance(60_000);
    expect(calls).toBe(1);
  });
});
