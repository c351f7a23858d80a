import { readdir, rm } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { Level } from 'level';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger, silentLogger } from '../../src/log.ts';
import { CacheManager } from './cache-manager.ts';
import { CacheStore } from './cache-store.ts';
import { keys, prefixRange, splitObjectId, type ResourceRef } from './keys.ts';
import { ListStaging } from './list-staging.ts';
import { prepareObject } from './prepared-object.ts';
import {
  hubRequest,
  JSON_HEADERS,
  list,
  pod,
  tempDataDir,
  watchEvent,
} from './recording-fixtures.ts';
import { encodeRecord, type ListIntent } from './store-records.ts';

const PODS: ResourceRef = { group: '', version: 'v1', resource: 'pods' };
const ALL_PODS = '/api/v1/pods';
/** Lists above 1 KiB stream; staged items go in batches of 2 KiB: a few pods each. */
const SMALL = { streamedListBytes: 1024, stagedChunkBytes: 2048 };

let dir: string;
let cache: CacheManager;
let logLines: string[];

async function open(): Promise<CacheManager> {
  const log = createLogger({
    name: 'test',
    destination: { write: (s: string) => logLines.push(s) },
  });
  return CacheManager.open({ dataDir: `${dir}/hub`, log, ...SMALL });
}

beforeEach(async () => {
  dir = await tempDataDir();
  logLines = [];
  cache = await open();
});
afterEach(async () => {
  await cache.close();
  await rm(dir, { recursive: true, force: true });
});

function pods(count: number, rv: (i: number) => string): unknown[] {
  return Array.from({ length: count }, (_, i) =>
    pod(`p${String(i).padStart(3, '0')}`, { rv: rv(i), node: `node-${i % 3}` }),
  );
}

/** Feeds a body in small pieces, as a socket delivers a large answer. */
function feed(body: Buffer, upTo = body.length, headers = JSON_HEADERS) {
  const recorder = cache.recorder(hubRequest('kubelet', 'GET', ALL_PODS), 200, headers);
  if (recorder === undefined) throw new Error('a LIST of pods is recorded');
  for (let at = 0; at < upTo; at += 700)
    recorder.write(body.subarray(at, Math.min(at + 700, upTo)));
  return recorder;
}

async function cachedPods(): Promise<Record<string, string>> {
  const entry = cache.store.entry('kubelet', PODS);
  if (entry === undefined) return {};
  const state = await cache.store.stateOf(entry);
  const out: Record<string, string> = {};
  for (const [id, meta] of state.meta) out[splitObjectId(id).name] = meta.rv;
  return out;
}

/** What an offline LIST of all of kubelet's pods answers: name -> resourceVersion. */
async function offlinePods(): Promise<Record<string, string>> {
  const query = { component: 'kubelet', resource: PODS, namespace: '' };
  const answer = await cache.offline.list(
    { ...query, labelSelector: '', fieldSelector: '' },
    { limit: 0 },
  );
  if (answer instanceof Error || !('bodies' in answer)) throw new Error('the scope is known');
  const out: Record<string, string> = {};
  for await (const batch of answer.bodies) {
    for (const raw of batch) {
      const { metadata } = JSON.parse(raw.toString()) as {
        metadata: { name: string; resourceVersion: string };
      };
      out[metadata.name] = metadata.resourceVersion;
    }
  }
  return out;
}

function scope() {
  return cache.store.entry('kubelet', PODS)?.scopes.get('||');
}

const expected = (count: number, rv: (i: number) => string) =>
  Object.fromEntries(
    Array.from({ length: count }, (_, i) => [`p${String(i).padStart(3, '0')}`, rv(i)]),
  );

/** The list every test starts from: 30 pods at resourceVersion 100. */
const recordThirty = () =>
  feed(
    list(
      'PodList',
      '100',
      pods(30, (i) => String(i + 1)),
    ),
  ).end();
const THIRTY = expected(30, (i) => String(i + 1));

describe('a LIST larger than the hub holds', () => {
  it('is recorded item by item, and replaces its scope exactly, across a restart', async () => {
    const body = list(
      'PodList',
      '100',
      pods(60, (i) => String(i + 1)),
    );
    const staged = vi.spyOn(cache.store, 'stageList');
    const recorder = feed(body, 8000);
    // Its items went to the store while the rest of it was still on its way.
    expect(staged).toHaveBeenCalledTimes(1);
    recorder.write(body.subarray(8000));
    await recorder.end();
    expect(await cachedPods()).toEqual(expected(60, (i) => String(i + 1)));
    expect(scope()).toMatchObject({ rv: '100', complete: true });
    // Fewer pods, some newer: the rest are gone, as with a list held whole.
    await feed(
      list(
        'PodList',
        '200',
        pods(40, (i) => String(i < 10 ? i + 150 : i + 1)),
      ),
    ).end();
    const now = expected(40, (i) => String(i < 10 ? i + 150 : i + 1));
    expect(await cachedPods()).toEqual(now);
    expect(cache.store.readObject('kubelet', PODS, 'default/p005')?.toString()).toMatch(
      /^\{"kind":"Pod","apiVersion":"v1","metadata":\{"name":"p005"/,
    );
    await cache.close();
    cache = await open();
    expect(await cachedPods()).toEqual(now);
    expect(scope()).toMatchObject({ rv: '200', complete: true });
  });

  it('is never read half applied: an offline LIST during its batches answers it whole', async () => {
    await recordThirty();
    let read: Promise<Record<string, string>> | undefined;
    // Called after each committed batch: the first time, memory holds the old list and some new items.
    const unsubscribe = cache.store.subscribe('kubelet', PODS, () => {
      read ??= offlinePods();
    });
    await feed(
      list(
        'PodList',
        '300',
        pods(60, (i) => String(i + 201)),
      ),
    ).end();
    unsubscribe();
    expect(read).toBeDefined();
    expect(await read).toEqual(expected(60, (i) => String(i + 201)));
  });

  it('decodes a gzip-compressed one as it streams', async () => {
    const body = gzipSync(
      list(
        'PodList',
        '100',
        pods(50, (i) => String(i + 1)),
      ),
    );
    await feed(body, body.length, { ...JSON_HEADERS, 'content-encoding': 'gzip' }).end();
    expect(await cachedPods()).toEqual(expected(50, (i) => String(i + 1)));
  });

  it('cut mid-stream, changes nothing: the previous members stay, none of the new ones come', async () => {
    await recordThirty();
    const next = list(
      'PodList',
      '200',
      pods(60, (i) => String(i + 500)),
    );
    const cut = feed(next, Math.floor(next.length * 0.8));
    cut.abort('upstream closed the response before it was complete');
    await cut.end();
    expect((await readdir(`${dir}/hub`)).filter((f) => f.startsWith('staging-'))).toEqual([]);
    await cache.close();
    cache = await open();
    expect(await cachedPods()).toEqual(THIRTY);
    expect(scope()).toMatchObject({ rv: '100', complete: true });
  });

  it('with a malformed item mid-stream, records nothing for the scope and logs it once', async () => {
    await recordThirty();
    const items = pods(60, (i) => String(i + 500));
    items[40] = { metadata: { namespace: 'default' }, spec: {} };
    await feed(list('PodList', '200', items)).end();
    expect(await cachedPods()).toEqual(THIRTY);
    expect(scope()).toMatchObject({ rv: '100' });
    const warnings = logLines.filter((l) => l.includes('upstream list not recorded'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('item 40');
  });

  it('assembles streamed pages of a chunked list and replaces only after the last', async () => {
    const all = pods(60, (i) => String(i + 1));
    const page = (path: string, body: Buffer) => {
      const r = cache.recorder(hubRequest('kubelet', 'GET', path), 200, JSON_HEADERS);
      r?.write(body);
      return r?.end();
    };
    await page(`${ALL_PODS}?limit=30`, list('PodList', '50', all.slice(0, 30), 'next'));
    expect(await cachedPods()).toEqual({});
    await page(`${ALL_PODS}?limit=30&continue=next`, list('PodList', '50', all.slice(30)));
    expect(await cachedPods()).toEqual(expected(60, (i) => String(i + 1)));
  });
});

describe('a watch-list larger than the hub holds', () => {
  const WATCH_LIST = `${ALL_PODS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true`;
  const initialEvents = (count: number, rv: (i: number) => string) =>
    pods(count, rv)
      .map((object) =>
        watchEvent('ADDED', { kind: 'Pod', apiVersion: 'v1', ...(object as object) }),
      )
      .join('');
  const endOfInitial = (rv: string) =>
    watchEvent('BOOKMARK', {
      kind: 'Pod',
      apiVersion: 'v1',
      metadata: { resourceVersion: rv, annotations: { 'k8s.io/initial-events-end': 'true' } },
    });

  it('stages its initial events and replaces the scope at their end; cut before it, changes nothing', async () => {
    await recordThirty();
    const staged = vi.spyOn(cache.store, 'stageList');
    const cut = cache.recorder(hubRequest('kubelet', 'GET', WATCH_LIST), 200, JSON_HEADERS);
    cut?.write(Buffer.from(initialEvents(60, (i) => String(i + 500))));
    cut?.abort('upstream closed the response before it was complete');
    await cut?.end();
    expect(staged).toHaveBeenCalledTimes(1);
    expect(await cachedPods()).toEqual(THIRTY);

    const whole = cache.recorder(hubRequest('kubelet', 'GET', WATCH_LIST), 200, JSON_HEADERS);
    whole?.write(Buffer.from(initialEvents(50, (i) => String(i + 600)) + endOfInitial('700')));
    await whole?.end();
    expect(await cachedPods()).toEqual(expected(50, (i) => String(i + 600)));
    expect(scope()).toMatchObject({ rv: '700', complete: true });
  });
});

describe('a staged replacement a crash cut', () => {
  it('is finished when the store is opened next: the scope is the new list', async () => {
    await recordThirty();
    await cache.close();
    // What a hub killed after the replacement's intent was synced leaves behind.
    const db = new Level<string, Buffer>(`${dir}/hub`, {
      keyEncoding: 'utf8',
      valueEncoding: 'buffer',
    });
    const staging = new ListStaging(`${dir}/hub`, SMALL.stagedChunkBytes);
    for (const item of pods(20, (i) => String(i + 300))) {
      const prepared = prepareObject(PODS, item, { kind: 'Pod', apiVersion: 'v1' });
      if (prepared instanceof Error) throw prepared;
      staging.add(prepared);
    }
    await staging.complete();
    const orphan = new ListStaging(`${dir}/hub`, SMALL.stagedChunkBytes);
    const stray = prepareObject(PODS, pod('stray', { rv: '999' }), {
      kind: 'Pod',
      apiVersion: 'v1',
    });
    if (stray instanceof Error) throw stray;
    orphan.add(stray);
    await orphan.complete();
    const intent: ListIntent = {
      component: 'kubelet',
      ...PODS,
      namespace: '',
      labelSelector: '',
      fieldSelector: '',
      resourceVersion: '400',
      kind: 'Pod',
    };
    await db.put(keys.listIntent(staging.txid), encodeRecord(intent), { sync: true });
    await db.close();

    const store = await CacheStore.open({ dataDir: `${dir}/hub`, log: silentLogger() });
    try {
      const entry = store.entry('kubelet', PODS);
      if (entry === undefined) throw new Error('kubelet pods are cached');
      const state = await store.stateOf(entry);
      expect(
        Object.fromEntries([...state.meta].map(([id, m]) => [splitObjectId(id).name, m.rv])),
      ).toEqual(expected(20, (i) => String(i + 300)));
      expect(entry.scopes.get('||')).toMatchObject({ rv: '400', complete: true });
    } finally {
      await store.close();
    }
    // Neither the finished list's items nor the unclaimed ones are left staged.
    const check = new Level<string, Buffer>(`${dir}/hub`, {
      keyEncoding: 'utf8',
      valueEncoding: 'buffer',
    });
    expect(await check.keys(prefixRange('x/')).all()).toEqual([]);
    await check.close();
    expect((await readdir(`${dir}/hub`)).filter((f) => f.startsWith('staging-'))).toEqual([]);
    cache = await open();
  });
});
