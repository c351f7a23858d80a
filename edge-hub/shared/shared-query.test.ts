import { describe, expect, it } from 'vitest';
import { parseRequestInfo, RequestInfoError } from '../../src/kube/request-info.ts';
import type { HubRequest } from '../hub-request.ts';
import { decodeContinue, encodeContinue, planShared } from './shared-query.ts';

function request(path: string): HubRequest {
  const info = parseRequestInfo('GET', path);
  if (info instanceof RequestInfoError) throw info;
  return { component: 'kube-proxy', info, query: new URLSearchParams(path.split('?')[1] ?? '') };
}

const plan = (query: string) => planShared(request(`/api/v1/services?${query}`));
const where = (query: string) => plan(query).kind;

describe('which shared LIST or WATCH the hub answers, as the watch cache decides', () => {
  it('answers LISTs at any version or one not older than N; hands consistent reads upstream', () => {
    expect(plan('resourceVersion=0&limit=500')).toMatchObject({ kind: 'list', limit: 0 });
    expect(plan('resourceVersion=7&resourceVersionMatch=NotOlderThan&limit=2')).toMatchObject({
      kind: 'list',
      notOlderThan: 7n,
      exact: undefined,
      limit: 2,
    });
    expect(plan('resourceVersion=7')).toMatchObject({ notOlderThan: 7n, exact: undefined });
    expect(where('')).toBe('upstream');
    expect(where('limit=10')).toBe('upstream');
  });

  it('reads an exact version for Exact, for a limit with a version, and for a continue token', () => {
    expect(plan('resourceVersion=7&resourceVersionMatch=Exact')).toMatchObject({ exact: 7n });
    expect(plan('resourceVersion=7&limit=5')).toMatchObject({ exact: 7n, limit: 5 });
    const token = encodeContinue(9n, 'default/web\u0000');
    expect(decodeContinue(token)).toEqual({ rv: 9n, start: 'default/web\u0000' });
    expect(plan(`limit=5&continue=${token}`)).toMatchObject({
      exact: 9n,
      start: 'default/web\u0000',
    });
  });

  it('leaves to upstream what it would refuse, so its own words reach the client', () => {
    for (const q of [
      'resourceVersionMatch=Exact&resourceVersion=0',
      'resourceVersionMatch=NotOlderThan',
      'resourceVersionMatch=Newest&resourceVersion=1',
      'continue=not-a-token',
      `continue=${Buffer.from('{"v":"meta.k8s.io/v1","rv":3,"start":"../x"}').toString('base64url')}`,
      `continue=${encodeContinue(3n, 'a')}&resourceVersion=3`,
      'limit=-1',
      'resourceVersion=abc',
      'labelSelector=a%20in%20(',
    ]) {
      expect(where(q), q).toBe('upstream');
    }
  });

  it('answers watches from a version, from now, and watch-lists with a version; a watch-list without one goes upstream', () => {
    expect(plan('watch=1&resourceVersion=5&allowWatchBookmarks=true')).toMatchObject({
      kind: 'watch',
      from: 5n,
      initialEvents: false,
      bookmarks: true,
    });
    expect(plan('watch=1')).toMatchObject({ initialEvents: true, watchList: false });
    const watchList = 'watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan';
    expect(plan(`${watchList}&resourceVersion=0&allowWatchBookmarks=true`)).toMatchObject({
      initialEvents: true,
      watchList: true,
      notOlderThan: 0n,
    });
    expect(where(`${watchList}&allowWatchBookmarks=true`)).toBe('upstream');
    expect(where(`${watchList}&resourceVersion=0`)).toBe('upstream');
    expect(
      plan('watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&resourceVersion=0'),
    ).toMatchObject({ initialEvents: false, from: undefined });
    expect(where('watch=1&resourceVersionMatch=NotOlderThan&resourceVersion=3')).toBe('upstream');
  });
});
