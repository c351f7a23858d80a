import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.ts';
import { FakeClock } from '../clock.ts';
import { ClusterCache } from '../kube/cluster-cache.ts';
import type { Method, RequestOptions, RestClient } from '../kube/rest-client.ts';
import { WorkTracker } from '../work-tracker.ts';
import { ApiWriter } from './api-writer.ts';
import type { EventSpec } from './cluster-writer.ts';

interface Call {
  method: Method;
  path: string;
  body: unknown;
  answer: () => void;
}

/** An apiserver that answers each request only when the test says so. */
class HeldClient implements RestClient {
  readonly calls: Call[] = [];
  inFlight = 0;
  maxInFlight = 0;

  request(method: Method, path: string, options: RequestOptions = {}): Promise<unknown> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    return new Promise((resolve) => {
      this.calls.push({
        method,
        path,
        body: options.body,
        answer: () => {
          this.inFlight--;
          resolve({});
        },
      });
    });
  }

  /** Answers every request, including the ones those answers lead to, until none is waiting. */
  async answerAll(tracker: WorkTracker): Promise<void> {
    for (let answered = 0; ;) {
      while (answered < this.calls.length) (this.calls[answered++] as Call).answer();
      await Promise.resolve();
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (answered === this.calls.length && !tracker.busy) return;
    }
  }
}

function writerWith(client: RestClient, leading: { now: boolean }) {
  const clock = new FakeClock(Date.UTC(2025, 0, 1, 8));
  const tracker = new WorkTracker((err) => {
    throw err;
  });
  const writer = new ApiWriter({
    client,
    cache: new ClusterCache(),
    clock,
    logger: silentLogger(),
    mayWrite: () => leading.now,
    spawn: (work) => tracker.run(work),
    instance: 'ecm-0',
  });
  return { writer, tracker };
}

function nodeEvent(i: number): EventSpec {
  return {
    involved: { kind: 'Node', name: `node-${i}`, uid: `uid-${i}` },
    type: 'Normal',
    reason: 'RegisteredNode',
    message: `Node node-${i} event: Registered Node node-${i} in Controller`,
    component: 'node-controller',
  };
}

describe('ApiWriter events', () => {
  it('posts Events one at a time and drops what does not fit a queue of 1000, as client-go does', async () => {
    const client = new HeldClient();
    const { writer, tracker } = writerWith(client, { now: true });
    // A new leader registering 1,200 nodes at once.
    for (let i = 0; i < 1200; i++) writer.recordEvent(nodeEvent(i));
    expect(client.calls).toHaveLength(1);
    expect(writer.droppedEvents).toBe(199);
    await client.answerAll(tracker);
    expect(client.maxInFlight).toBe(1);
    expect(client.calls).toHaveLength(1001);
    const names = client.calls.map(
      (c) => (c.body as { involvedObject: { name: string } }).involvedObject.name,
    );
    expect(names.slice(0, 3)).toEqual(['node-0', 'node-1', 'node-2']);
    expect(names.at(-1)).toBe('node-1000');
    expect(
      new Set(client.calls.map((c) => (c.body as { metadata: { name: string } }).metadata.name))
        .size,
    ).toBe(1001);
  });

  it('writes the Event as client-go does: object reference, source, reporting instance, times', async () => {
    const client = new HeldClient();
    const { writer, tracker } = writerWith(client, { now: true });
    writer.recordEvent({
      involved: { kind: 'Pod', name: 'web', namespace: 'team', uid: 'uid-web' },
      type: 'Warning',
      reason: 'NodeNotReady',
      message: 'Node is not ready',
      component: 'node-controller',
    });
    writer.recordEvent(nodeEvent(7));
    await client.answerAll(tracker);
    expect(client.calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'POST /api/v1/namespaces/team/events',
      // Events about cluster-scoped objects go to "default".
      'POST /api/v1/namespaces/default/events',
    ]);
    expect(client.calls[0]?.body).toMatchObject({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { namespace: 'team' },
      involvedObject: {
        apiVersion: 'v1',
        kind: 'Pod',
        name: 'web',
        namespace: 'team',
        uid: 'uid-web',
      },
      type: 'Warning',
      reason: 'NodeNotReady',
      message: 'Node is not ready',
      source: { component: 'node-controller' },
      reportingComponent: 'node-controller',
      reportingInstance: 'ecm-0',
      firstTimestamp: '2025-01-01T08:00:00Z',
      lastTimestamp: '2025-01-01T08:00:00Z',
      count: 1,
    });
    expect((client.calls[0]?.body as { metadata: { name: string } }).metadata.name).toMatch(
      /^web\.[0-9a-f]+$/,
    );
  });

  it('drops the queued Events of a leader that lost its lease', async () => {
    const client = new HeldClient();
    const leading = { now: true };
    const { writer, tracker } = writerWith(client, leading);
    for (let i = 0; i < 5; i++) writer.recordEvent(nodeEvent(i));
    leading.now = false;
    writer.recordEvent(nodeEvent(5));
    await client.answerAll(tracker);
    // Only the one already on its way.
    expect(client.calls).toHaveLength(1);
  });
});
