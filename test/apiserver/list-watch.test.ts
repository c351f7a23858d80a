import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTINUE_TOO_OLD_MESSAGE, LIST_TOO_OLD_MESSAGE } from './list-pages.ts';
import { FakeApiServer } from './server.ts';
import { WireClient, type WatchEvent } from './wire-client.ts';

type Meta = {
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  annotations?: Record<string, string>;
};
type Item = { kind?: string; apiVersion?: string; metadata: Meta; spec?: Record<string, unknown> };
type List = {
  kind: string;
  apiVersion: string;
  metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number };
  items: Item[];
};

const names = (list: { items: Item[] }): string[] => list.items.map((i) => i.metadata.name ?? '');
const evName = (e: WatchEvent): string => String(e.object.metadata?.name);

describe('list and watch over the wire', () => {
  const api = new FakeApiServer({ bookmarkIntervalMs: 50, historyLimit: 10_000 });
  let wire: WireClient;
  const ns = 'lw';

  beforeAll(async () => {
    await api.start();
    wire = new WireClient(api.url);
    api.store.create('namespaces', { metadata: { name: ns } });
    for (const [name, node, phase] of [
      ['p1', 'n1', 'Running'],
      ['p2', 'n1', 'Pending'],
      ['p3', 'n2', 'Running'],
    ] as const) {
      api.store.create('pods', {
        metadata: { name, namespace: ns, labels: { app: name === 'p3' ? 'db' : 'web' } },
        spec: { nodeName: node, containers: [{ name: 'c', image: 'i:1' }] },
      });
      const pod = api.store.mustGet('pods', name, ns);
      api.store.updateStatus('pods', { ...pod, status: { phase } });
    }
  });
  afterAll(() => api.close());

  it('answers a list envelope; built-in items carry no kind, custom resource items do', async () => {
    const res = await wire.get(`/api/v1/namespaces/${ns}/pods`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const list = res.json<List>();
    expect(list.kind).toBe('PodList');
    expect(list.apiVersion).toBe('v1');
    expect(list.metadata.resourceVersion).toBe(api.store.resourceVersion);
    expect(names(list)).toEqual(['p1', 'p2', 'p3']);
    expect(list.items[0]?.kind).toBeUndefined();
    api.store.create('widgets', { metadata: { name: 'w1', namespace: ns } });
    const widgets = (
      await wire.get(`/apis/example.edgebox.io/v1/namespaces/${ns}/widgets`)
    ).json<List>();
    expect(widgets.kind).toBe('WidgetList');
    expect(widgets.items[0]).toMatchObject({ kind: 'Widget', apiVersion: 'example.edgebox.io/v1' });
  });

  it('filters by label and field selectors and refuses unsupported ones with 400', async () => {
    const byLabel = await wire.get(`/api/v1/namespaces/${ns}/pods?labelSelector=app%3Dweb`);
    expect(names(byLabel.json<List>())).toEqual(['p1', 'p2']);
    const byNode = await wire.get(
      `/api/v1/pods?fieldSelector=spec.nodeName%3Dn1,status.phase%3DRunning`,
    );
    expect(names(byNode.json<List>())).toEqual(['p1']);
    const byName = await wire.get(`/api/v1/namespaces/${ns}/pods?fieldSelector=metadata.name%3Dp3`);
    expect(names(byName.json<List>())).toEqual(['p3']);
    const bad = await wire.get(`/api/v1/pods?fieldSelector=spec.foo%3Dbar`);
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({
      reason: 'BadRequest',
      message: 'field label not supported: spec.foo',
    });
    const badLabel = await wire.get(`/api/v1/pods?labelSelector=a%20in%20(b`);
    expect(badLabel.status).toBe(400);
  });

  it('pages with limit/continue from one snapshot, with remainingItemCount', async () => {
    api.store.create('namespaces', { metadata: { name: 'paged' } });
    for (let i = 0; i < 5; i++)
      api.store.create('configmaps', { metadata: { name: `cm-${i}`, namespace: 'paged' } });
    // the namespace controller's kube-root-ca.crt is absent on plain http; only the 5 configmaps are there
    const first = (await wire.get('/api/v1/namespaces/paged/configmaps?limit=2')).json<List>();
    expect(names(first)).toEqual(['cm-0', 'cm-1']);
    expect(first.metadata.remainingItemCount).toBe(3);
    expect(first.metadata.continue).toBeDefined();
    // changes after the first page do not show in later pages: the list is a snapshot
    api.store.create('configmaps', { metadata: { name: 'cm-5', namespace: 'paged' } });
    api.store.delete('configmaps', 'cm-3', 'paged');
    const second = (
      await wire.get(
        `/api/v1/namespaces/paged/configmaps?limit=2&continue=${first.metadata.continue}`,
      )
    ).json<List>();
    expect(names(second)).toEqual(['cm-2', 'cm-3']);
    expect(second.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    const third = (
      await wire.get(
        `/api/v1/namespaces/paged/configmaps?limit=2&continue=${second.metadata.continue}`,
      )
    ).json<List>();
    expect(names(third)).toEqual(['cm-4']);
    expect(third.metadata.continue).toBeUndefined();
    const garbage = await wire.get('/api/v1/namespaces/paged/configmaps?limit=2&continue=%%%');
    expect(garbage.status).toBe(400);
  });

  it('resourceVersion=0 is served from the cache and ignores limit', async () => {
    const list = (
      await wire.get(`/api/v1/namespaces/${ns}/pods?limit=1&resourceVersion=0`)
    ).json<List>();
    expect(list.items).toHaveLength(3);
    expect(list.metadata.continue).toBeUndefined();
  });

  it('resourceVersionMatch=Exact lists the state at that resourceVersion', async () => {
    const before = api.store.resourceVersion;
    api.store.create('configmaps', { metadata: { name: 'later', namespace: ns } });
    const exact = (
      await wire.get(
        `/api/v1/namespaces/${ns}/configmaps?resourceVersion=${before}&resourceVersionMatch=Exact`,
      )
    ).json<List>();
    expect(exact.metadata.resourceVersion).toBe(before);
    expect(names(exact)).not.toContain('later');
    const now = (
      await wire.get(
        `/api/v1/namespaces/${ns}/configmaps?resourceVersion=${before}&resourceVersionMatch=NotOlderThan`,
      )
    ).json<List>();
    expect(names(now)).toContain('later');
    const invalid = await wire.get(
      `/api/v1/namespaces/${ns}/configmaps?resourceVersionMatch=Exact`,
    );
    expect(invalid.status).toBe(422);
    expect(invalid.json().message).toBe(
      'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided',
    );
  });

  it('a list at a not-yet-reached resourceVersion waits for it', async () => {
    const next = Number(api.store.resourceVersion) + 1;
    const pending = wire.get(`/api/v1/namespaces/${ns}/configmaps?resourceVersion=${next}`);
    await expect
      .poll(() => api.requests.some((r) => r.url.includes(`resourceVersion=${next}`)))
      .toBe(true);
    api.store.create('configmaps', { metadata: { name: 'awaited', namespace: ns } });
    const res = await pending;
    expect(res.status).toBe(200);
    expect(names(res.json<List>())).toContain('awaited');
  });

  it('watch without resourceVersion starts with synthetic ADDED events, then streams changes', async () => {
    const w = await wire.watch(`/api/v1/namespaces/${ns}/pods?watch=true`);
    expect(w.status).toBe(200);
    expect(w.headers['content-type']).toBe('application/json');
    expect(w.headers['transfer-encoding']).toBe('chunked');
    const initial = [await w.next(), await w.next(), await w.next()];
    expect(initial.map((e) => [e.type, evName(e)])).toEqual([
      ['ADDED', 'p1'],
      ['ADDED', 'p2'],
      ['ADDED', 'p3'],
    ]);
    expect(initial[0]?.object.kind).toBe('Pod');
    api.store.create('pods', {
      metadata: { name: 'p4', namespace: ns },
      spec: { containers: [{ name: 'c', image: 'i' }] },
    });
    api.store.patch('pods', 'p4', ns, 'merge', { metadata: { labels: { x: 'y' } } });
    api.store.delete('pods', 'p4', ns);
    const live = [await w.next(), await w.next(), await w.next()];
    expect(live.map((e) => [e.type, evName(e)])).toEqual([
      ['ADDED', 'p4'],
      ['MODIFIED', 'p4'],
      ['DELETED', 'p4'],
    ]);
    const rvs = live.map((e) => Number(e.object.metadata?.resourceVersion));
    expect(rvs[1]).toBeGreaterThan(rvs[0] ?? 0);
    expect(rvs[2]).toBeGreaterThan(rvs[1] ?? 0);
    w.close();
  });

  it('watch from a resourceVersion replays the events after it', async () => {
    const from = api.store.resourceVersion;
    api.store.create('configmaps', { metadata: { name: 'replay-1', namespace: ns } });
    api.store.create('configmaps', { metadata: { name: 'replay-2', namespace: ns } });
    const w = await wire.watch(
      `/api/v1/namespaces/${ns}/configmaps?watch=1&resourceVersion=${from}`,
    );
    expect([evName(await w.next()), evName(await w.next())]).toEqual(['replay-1', 'replay-2']);
    w.close();
  });

  it('a filtered watch sees objects enter (ADDED) and leave (DELETED) the selection', async () => {
    const rv = api.store.resourceVersion;
    const w = await wire.watch(
      `/api/v1/pods?watch=true&resourceVersion=${rv}&fieldSelector=spec.nodeName%3Dn9`,
    );
    api.store.create('pods', {
      metadata: { name: 'mover', namespace: ns, labels: { a: '1' } },
      spec: { nodeName: 'n8', containers: [{ name: 'c', image: 'i' }] },
    });
    api.store.delete('pods', 'mover', ns, { gracePeriodSeconds: 0 });
    api.store.create('pods', {
      metadata: { name: 'mover', namespace: ns, labels: { a: '1' } },
      spec: { containers: [{ name: 'c', image: 'i' }] },
    });
    api.store.bindPod(ns, 'mover', { target: { name: 'n9' } });
    api.store.patch('pods', 'mover', ns, 'merge', { metadata: { labels: { a: '2' } } });
    const entered = await w.next();
    expect([entered.type, evName(entered)]).toEqual(['ADDED', 'mover']);
    const modified = await w.next();
    expect(modified.type).toBe('MODIFIED');
    api.store.delete('pods', 'mover', ns, { gracePeriodSeconds: 0 });
    const left = await w.next();
    expect([left.type, evName(left)]).toEqual(['DELETED', 'mover']);
    w.close();
  });

  it('a label-filtered watch turns a relabel out of the selection into DELETED', async () => {
    api.store.create('configmaps', {
      metadata: { name: 'relabel', namespace: ns, labels: { keep: 'yes' } },
    });
    const w = await wire.watch(
      `/api/v1/namespaces/${ns}/configmaps?watch=1&labelSelector=keep%3Dyes&resourceVersion=${api.store.resourceVersion}`,
    );
    const cm = api.store.mustGet('configmaps', 'relabel', ns);
    api.store.update('configmaps', { ...cm, metadata: { ...cm.metadata, labels: { keep: 'no' } } });
    const e = await w.next();
    expect(e.type).toBe('DELETED');
    expect(e.object.metadata?.resourceVersion).toBe(api.store.resourceVersion);
    w.close();
  });

  it('sends BOOKMARKs with only kind, apiVersion and metadata.resourceVersion', async () => {
    const w = await wire.watch(
      `/api/v1/namespaces/${ns}/pods?watch=1&allowWatchBookmarks=true&resourceVersion=${api.store.resourceVersion}`,
    );
    const b = await w.until((e) => e.type === 'BOOKMARK');
    expect(b.object).toEqual({
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: { resourceVersion: api.store.resourceVersion },
    });
    w.close();
  });

  it('closes the stream cleanly at timeoutSeconds', async () => {
    const w = await wire.watch(
      `/api/v1/namespaces/${ns}/pods?watch=1&timeoutSeconds=1&resourceVersion=${api.store.resourceVersion}`,
    );
    expect(await w.ended).toBe('end');
  });

  it('sendInitialEvents=true ends the initial ADDED events with an initial-events-end BOOKMARK', async () => {
    const w = await wire.watch(
      `/api/v1/namespaces/${ns}/pods?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true`,
    );
    const events = [await w.next(), await w.next(), await w.next(), await w.next()];
    expect(events.map((e) => e.type)).toEqual(['ADDED', 'ADDED', 'ADDED', 'BOOKMARK']);
    expect(events[3]?.object.metadata?.annotations).toEqual({
      'k8s.io/initial-events-end': 'true',
    });
    w.close();
    const invalid = await wire.get(`/api/v1/namespaces/${ns}/pods?watch=1&sendInitialEvents=true`);
    expect(invalid.status).toBe(422);
  });

  it('the legacy /watch/ path watches one object', async () => {
    const w = await wire.watch(`/api/v1/watch/namespaces/${ns}/pods/p2`);
    const e = await w.next();
    expect([e.type, evName(e)]).toEqual(['ADDED', 'p2']);
    api.store.patch('pods', 'p1', ns, 'merge', { metadata: { labels: { touched: 'p1' } } });
    api.store.patch('pods', 'p2', ns, 'merge', { metadata: { labels: { touched: 'p2' } } });
    const m = await w.next();
    expect([m.type, evName(m)]).toEqual(['MODIFIED', 'p2']);
    w.close();
  });

  it('serves a Table when kubectl asks for one', async () => {
    const res = await wire.get(`/api/v1/namespaces/${ns}/pods`, {
      Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json',
    });
    const table = res.json<{
      kind: string;
      columnDefinitions: Array<{ name: string }>;
      rows: Array<{ cells: unknown[] }>;
    }>();
    expect(table.kind).toBe('Table');
    expect(table.columnDefinitions.map((c) => c.name).slice(0, 5)).toEqual([
      'Name',
      'Ready',
      'Status',
      'Restarts',
      'Age',
    ]);
    expect(table.rows[0]?.cells.slice(0, 3)).toEqual(['p1', '0/1', 'Running']);
  });
});

describe('expired history', () => {
  const api = new FakeApiServer({ historyLimit: 5 });
  let wire: WireClient;
  beforeAll(async () => {
    await api.start();
    wire = new WireClient(api.url);
  });
  afterAll(() => api.close());

  it('a watch from a compacted resourceVersion gets 200 and an ERROR event with 410 Expired, then the end', async () => {
    const old = Number(api.store.resourceVersion);
    for (let i = 0; i < 10; i++)
      api.store.create('configmaps', { metadata: { name: `churn-${i}`, namespace: 'default' } });
    const oldest = api.store.storage.compactedResourceVersion;
    const w = await wire.watch(
      `/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=${old}`,
    );
    expect(w.status).toBe(200);
    const e = await w.next();
    expect(e.type).toBe('ERROR');
    expect(e.object).toMatchObject({
      kind: 'Status',
      status: 'Failure',
      reason: 'Expired',
      code: 410,
      message: `too old resource version: ${old} (${oldest})`,
    });
    expect(await w.ended).toBe('end');
  });

  it('an exact list older than the history is 410', async () => {
    const res = await wire.get(
      '/api/v1/namespaces/default/configmaps?resourceVersion=101&resourceVersionMatch=Exact',
    );
    expect(res.status).toBe(410);
    expect(res.json()).toMatchObject({ reason: 'Expired', message: LIST_TOO_OLD_MESSAGE });
  });

  it('a continue token whose snapshot was compacted is 410 with a token to continue inconsistently', async () => {
    const first = (await wire.get('/api/v1/namespaces/default/configmaps?limit=3')).json<List>();
    api.store.create('configmaps', {
      metadata: { name: 'zz-after-first-page', namespace: 'default' },
    });
    api.store.compact();
    const res = await wire.get(
      `/api/v1/namespaces/default/configmaps?limit=3&continue=${first.metadata.continue}`,
    );
    expect(res.status).toBe(410);
    const status = res.json<{ message: string; reason: string; metadata: { continue?: string } }>();
    expect(status.reason).toBe('Expired');
    expect(status.message).toBe(CONTINUE_TOO_OLD_MESSAGE);
    expect(status.metadata.continue).toBeDefined();
    const rest = await wire.get(
      `/api/v1/namespaces/default/configmaps?limit=100&continue=${status.metadata.continue}`,
    );
    expect(rest.status).toBe(200);
    expect(names(first)).toEqual(['churn-0', 'churn-1', 'churn-2']);
    expect(names(rest.json<List>())[0]).toBe('churn-3');
  });
});
