import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.ts';
import {
  HealthChecker,
  type OverallChange,
  type ProbeResult,
  type StateChange,
  type Timers,
} from './health-checker.ts';

/** A clock and timer queue the test advances by hand. */
class FakeTimers implements Timers {
  now = 0;
  #next = 1;
  #tasks = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#tasks.set(id, { at: this.now + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.#tasks.delete(handle as number);
  }
  pending(): number {
    return this.#tasks.size;
  }
  /** Runs every task due up to now+ms, letting promise callbacks run between them. */
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      await flush();
      const due = [...this.#tasks.entries()]
        .filter(([, t]) => t.at <= until)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#tasks.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = until;
    await flush();
  }
}

async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

interface Srv {
  readonly name: string;
}

/** Probe answers set per server; `hang` never settles (the checker's timeout must fire). */
function scriptedProbe() {
  const answers = new Map<string, 'ok' | 'fail' | 'hang'>();
  const calls: string[] = [];
  const probe = (u: Srv): Promise<ProbeResult> => {
    calls.push(u.name);
    const a = answers.get(u.name) ?? 'ok';
    if (a === 'hang') return new Promise<ProbeResult>(() => {});
    return Promise.resolve(a === 'ok' ? { ok: true } : { ok: false, reason: 'refused' });
  };
  return { answers, calls, probe };
}

function setup(names: string[], opts: { failures?: number; successes?: number } = {}) {
  const timers = new FakeTimers();
  const p = scriptedProbe();
  const servers = names.map((name) => ({ name }));
  const hc = new HealthChecker<Srv>({
    upstreams: servers,
    probe: p.probe,
    intervalMs: 5000,
    timeoutMs: 2000,
    failureThreshold: opts.failures ?? 3,
    successThreshold: opts.successes ?? 2,
    log: silentLogger(),
    timers,
    clock: () => timers.now,
  });
  const changes: StateChange[] = [];
  const overall: OverallChange[] = [];
  hc.onChange((c) => changes.push(c));
  hc.onOverallChange((c) => overall.push(c));
  return { hc, timers, servers, changes, overall, ...p };
}

describe('HealthChecker', () => {
  it('probes at once on start and lets the first answer decide, without thresholds', async () => {
    const s = setup(['a', 'b']);
    s.answers.set('b', 'fail');
    expect(s.hc.overall()).toBe('unknown');
    expect(s.hc.routable().map((u) => u.name)).toEqual(['a', 'b']);
    s.hc.start();
    await s.timers.advance(0);
    expect(s.calls).toEqual(['a', 'b']);
    expect(s.hc.stateOf('a')).toBe('up');
    expect(s.hc.stateOf('b')).toBe('down');
    expect(s.overall).toEqual([{ from: 'unknown', to: 'up' }]);
    expect(s.hc.routable().map((u) => u.name)).toEqual(['a']);
  });

  it('a node booting offline is down after the first failed probe', async () => {
    const s = setup(['a']);
    s.answers.set('a', 'fail');
    s.hc.start();
    await s.timers.advance(0);
    expect(s.hc.overall()).toBe('down');
    expect(s.hc.routable()).toEqual([]);
  });

  it('marks an up server down only after N consecutive failures', async () => {
    const s = setup(['a'], { failures: 3 });
    s.hc.start();
    await s.timers.advance(0);
    expect(s.hc.stateOf('a')).toBe('up');
    s.answers.set('a', 'fail');
    await s.timers.advance(5000);
    await s.timers.advance(5000);
    expect(s.hc.stateOf('a')).toBe('up');
    // a success in between restarts the count
    s.answers.set('a', 'ok');
    await s.timers.advance(5000);
    s.answers.set('a', 'fail');
    await s.timers.advance(5000);
    await s.timers.advance(5000);
    expect(s.hc.stateOf('a')).toBe('up');
    await s.timers.advance(5000);
    expect(s.hc.stateOf('a')).toBe('down');
    expect(s.changes.map((c) => `${c.from}->${c.to}`)).toEqual(['unknown->up', 'up->down']);
    expect(s.overall.at(-1)).toEqual({ from: 'up', to: 'down' });
  });

  it('marks a down server up only after M consecutive successes', async () => {
    const s = setup(['a'], { successes: 2 });
    s.answers.set('a', 'fail');
    s.hc.start();
    await s.timers.advance(0);
    s.answers.set('a', 'ok');
    await s.timers.advance(5000);
    expect(s.hc.stateOf('a')).toBe('down');
    await s.timers.advance(5000);
    expect(s.hc.stateOf('a')).toBe('up');
    expect(s.overall).toEqual([
      { from: 'unknown', to: 'down' },
      { from: 'down', to: 'up' },
    ]);
  });

  it('counts failed proxied requests toward the threshold', async () => {
    const s = setup(['a'], { failures: 2 });
    s.hc.start();
    await s.timers.advance(0);
    s.hc.reportFailure(s.servers[0]!, 'ECONNREFUSED');
    expect(s.hc.stateOf('a')).toBe('up');
    s.hc.reportFailure(s.servers[0]!, 'ECONNREFUSED');
    expect(s.hc.stateOf('a')).toBe('down');
    expect(s.hc.snapshot()[0]).toMatchObject({ state: 'down', lastError: 'ECONNREFUSED' });
  });

  it('a proxied failure decides an unknown server at once (boot with the link down)', () => {
    const s = setup(['a']);
    s.hc.reportFailure(s.servers[0]!, 'ECONNREFUSED');
    expect(s.hc.overall()).toBe('down');
  });

  it('a probe with no answer fails after the timeout and probing goes on', async () => {
    const s = setup(['a'], { failures: 1 });
    s.hc.start();
    await s.timers.advance(0);
    s.answers.set('a', 'hang');
    await s.timers.advance(5000);
    expect(s.hc.stateOf('a')).toBe('up');
    await s.timers.advance(2000);
    expect(s.hc.stateOf('a')).toBe('down');
    expect(s.hc.snapshot()[0]?.lastError).toBe('no answer within 2000ms');
    s.answers.set('a', 'ok');
    const before = s.calls.length;
    await s.timers.advance(5000);
    expect(s.calls.length).toBe(before + 1);
  });

  it('routes to up servers in configured order, then unknown ones, never down ones', async () => {
    const s = setup(['a', 'b', 'c'], { failures: 1 });
    s.hc.reportSuccess(s.servers[1]!);
    expect(s.hc.routable().map((u) => u.name)).toEqual(['b', 'a', 'c']);
    s.hc.reportSuccess(s.servers[0]!);
    s.hc.reportFailure(s.servers[2]!, 'x');
    expect(s.hc.routable().map((u) => u.name)).toEqual(['a', 'b']);
    s.hc.reportFailure(s.servers[0]!, 'x');
    expect(s.hc.routable().map((u) => u.name)).toEqual(['b']);
    expect(s.hc.overall()).toBe('up');
    s.hc.reportFailure(s.servers[1]!, 'x');
    expect(s.hc.overall()).toBe('down');
  });

  it('tells every successful probe, and stops probing on stop()', async () => {
    const s = setup(['a']);
    let successes = 0;
    s.hc.onProbeSuccess(() => successes++);
    s.hc.start();
    await s.timers.advance(10_000);
    expect(successes).toBe(3);
    s.hc.stop();
    expect(s.timers.pending()).toBe(0);
    await s.timers.advance(10_000);
    expect(successes).toBe(3);
  });
});
