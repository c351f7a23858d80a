import { afterEach, describe, expect, it, vi } from 'vitest';
import { DeferredRecords, WriteQueue } from './write-queue.ts';

describe('WriteQueue (group commit)', () => {
  it('commits everything queued while a commit runs as the next single group, in order', async () => {
    const groups: string[][] = [];
    let release: () => void = () => undefined;
    const queue = new WriteQueue<string>(async (ops) => {
      groups.push(ops);
      // The first commit is held until the test lets it go, as a slow synced write would be.
      if (groups.length === 1) await new Promise<void>((resolve) => (release = resolve));
    });
    queue.push('a');
    await vi.waitFor(() => expect(groups).toEqual([['a']]));
    queue.push('b');
    queue.push('c');
    queue.push('d');
    release();
    await queue.idle();
    expect(groups).toEqual([['a'], ['b', 'c', 'd']]);
  });

  it('an operation queued after the queue ran dry starts a new commit', async () => {
    const groups: string[][] = [];
    const queue = new WriteQueue<string>((ops) => {
      groups.push(ops);
      return Promise.resolve();
    });
    queue.push('a');
    await queue.idle();
    queue.push('b');
    await queue.idle();
    expect(groups).toEqual([['a'], ['b']]);
  });

  it('a failed commit does not stop the queue', async () => {
    const groups: string[][] = [];
    const queue = new WriteQueue<string>((ops) => {
      groups.push(ops);
      return ops.includes('bad') ? Promise.reject(new Error('disk full')) : Promise.resolve();
    });
    queue.push('bad');
    await queue.idle().catch(() => undefined);
    queue.push('good');
    await queue.idle();
    expect(groups).toEqual([['bad'], ['good']]);
  });

  it('an operation that must be alone gets a commit of its own, in queue order', async () => {
    const groups: string[][] = [];
    let release: () => void = () => undefined;
    const queue = new WriteQueue<string>(
      async (ops) => {
        groups.push(ops);
        if (groups.length === 1) await new Promise<void>((resolve) => (release = resolve));
      },
      (op) => op.startsWith('staged'),
    );
    queue.push('a');
    await vi.waitFor(() => expect(groups).toEqual([['a']]));
    for (const op of ['b', 'staged1', 'staged2', 'c', 'd']) queue.push(op);
    release();
    await queue.idle();
    expect(groups).toEqual([['a'], ['b'], ['staged1'], ['staged2'], ['c', 'd']]);
  });
});

describe('DeferredRecords (bookkeeping without a synced write each)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('keeps the last value of each record, encoded once when taken', () => {
    const encode = vi.fn((n: { v: number }) => Buffer.from(String(n.v)));
    const records = new DeferredRecords({ flushMs: 1000, encode, flush: () => undefined });
    const source = { v: 1 };
    records.defer('r/x', source);
    source.v = 2;
    records.defer('r/x', source);
    records.defer('s/y', Buffer.from('raw'));
    expect(encode).not.toHaveBeenCalled();
    const ops = records.take();
    expect(ops.map((o) => (o.type === 'put' ? `${o.key}=${o.value.toString()}` : o.key))).toEqual([
      'r/x=2',
      's/y=raw',
    ]);
    expect(encode).toHaveBeenCalledTimes(1);
    expect(records.take()).toEqual([]);
  });

  it('asks for a flush once within flushMs when no batch takes the records', () => {
    vi.useFakeTimers();
    const flush = vi.fn();
    const records = new DeferredRecords({ flushMs: 1000, encode: () => Buffer.alloc(0), flush });
    records.defer('r/x', Buffer.from('1'));
    records.defer('r/y', Buffer.from('2'));
    vi.advanceTimersByTime(999);
    expect(flush).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(flush).toHaveBeenCalledTimes(1);
  });

  it('a batch that takes the records cancels the flush', () => {
    vi.useFakeTimers();
    const flush = vi.fn();
    const records = new DeferredRecords({ flushMs: 1000, encode: () => Buffer.alloc(0), flush });
    records.defer('r/x', Buffer.from('1'));
    records.take();
    vi.advanceTimersByTime(5000);
    expect(flush).not.toHaveBeenCalled();
  });
});
