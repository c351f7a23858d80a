import { describe, expect, it } from 'vitest';
import { EventRing, parseResourceVersion, type SharedEvent } from './event-ring.ts';

function event(rv: number): SharedEvent {
  const current = {
    key: `default/s${rv}`,
    namespace: 'default',
    labels: undefined,
    object: {},
    raw: Buffer.from('{}'),
  };
  return { type: 'ADDED', rv: BigInt(rv), current, previous: undefined };
}

describe('EventRing', () => {
  it('hands a watch resuming from a held version what followed it, in order', () => {
    const ring = new EventRing(10, 100n);
    for (const rv of [101, 102, 103]) ring.push(event(rv));
    expect(ring.since(101n)).toEqual([event(102), event(103)]);
    expect(ring.since(100n)).toHaveLength(3);
    expect(ring.since(103n)).toEqual([]);
  });

  it('expires a version older than the list it started from', () => {
    const ring = new EventRing(10, 100n);
    expect(ring.since(99n)).toBe('expired');
  });

  it('expires what it had to drop: a version before the oldest kept event is 410', () => {
    const ring = new EventRing(2, 100n);
    for (const rv of [101, 102, 103]) ring.push(event(rv));
    // 101 dropped: who saw it may resume, who saw only 100 may not.
    expect(ring.since(100n)).toBe('expired');
    expect(ring.since(101n)).toEqual([event(102), event(103)]);
  });

  it('starts a new history at a re-list', () => {
    const ring = new EventRing(10, 100n);
    ring.push(event(101));
    ring.reset(200n);
    expect(ring.since(101n)).toBe('expired');
    expect(ring.since(200n)).toEqual([]);
  });

  it('compares resourceVersions as etcd revisions and refuses anything else', () => {
    expect(parseResourceVersion('1000')).toBe(1000n);
    expect(parseResourceVersion('')).toBeUndefined();
    expect(parseResourceVersion('abc')).toBeUndefined();
  });
});
