import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import type { Upstream } from '../upstream/upstream.ts';
import {
  credentialsOf,
  mayRetryElsewhere,
  mayRetryOnNewConnection,
  prepareRequestHeaders,
  putHubAuthorization,
  responseHeaders,
  upstreamPath,
} from './forwarding-policy.ts';

function clientHeaders(): IncomingHttpHeaders {
  return {
    host: 'hub',
    connection: 'Upgrade, keep-alive',
    'keep-alive': 'timeout=5',
    'proxy-authorization': 'Basic c2VjcmV0',
    'proxy-connection': 'keep-alive',
    te: 'trailers',
    trailer: 'x',
    upgrade: 'SPDY/3.1',
    expect: '100-continue',
    accept: 'application/vnd.kubernetes.protobuf, */*',
    'accept-encoding': 'gzip',
    'user-agent': 'kubelet/v1.25.0',
  };
}

function answer(statusCode: number, raw: string[]): IncomingMessage {
  return { statusCode, rawHeaders: raw } as unknown as IncomingMessage;
}

const upstream = {
  url: new URL('https://10.0.0.1:6443/prefix/'),
  agent: { name: 'hub certificate' },
  passthroughAgent: { name: 'no certificate' },
} as unknown as Upstream;

describe('forwarding policy', () => {
  it("drops the client connection's headers and the proxy's credentials from a request", () => {
    const h = clientHeaders();
    prepareRequestHeaders(h, 'request', false);
    expect(Object.keys(h).sort()).toEqual(['accept', 'accept-encoding', 'host', 'user-agent']);
    expect(h.accept).toBe('application/vnd.kubernetes.protobuf, */*');
  });

  it('asks for uncompressed JSON when the answer is recorded or filtered', () => {
    const h = clientHeaders();
    prepareRequestHeaders(h, 'request', true);
    expect(h.accept).toBe('application/json');
    expect(h['accept-encoding']).toBe('identity');
  });

  it('keeps Connection and Upgrade on an upgrade, and drops the rest of the hop', () => {
    const h = clientHeaders();
    prepareRequestHeaders(h, 'upgrade', false);
    expect(h.connection).toBe('Upgrade, keep-alive');
    expect(h.upgrade).toBe('SPDY/3.1');
    for (const gone of ['keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'trailer']) {
      expect(h[gone]).toBeUndefined();
    }
  });

  it("sends a client's own token without the hub's certificate, else the hub's credentials", () => {
    const own: IncomingHttpHeaders = { authorization: 'Bearer client' };
    expect(credentialsOf(own, upstream)).toEqual({ own: true, agent: upstream.passthroughAgent });
    const none: IncomingHttpHeaders = {};
    expect(credentialsOf(none, upstream)).toEqual({ own: false, agent: upstream.agent });
    putHubAuthorization(none, 'Bearer hub');
    expect(none.authorization).toBe('Bearer hub');
    putHubAuthorization(none, undefined);
    expect(none.authorization).toBeUndefined();
  });

  it('retries reads anywhere, writes only when they never reached a server', () => {
    expect(mayRetryElsewhere('get', true)).toBe(true);
    expect(mayRetryElsewhere('watch', true)).toBe(true);
    expect(mayRetryElsewhere('create', false)).toBe(true);
    expect(mayRetryElsewhere('create', true)).toBe(false);
    expect(mayRetryElsewhere('patch', true)).toBe(false);
    expect(mayRetryOnNewConnection('list')).toBe(true);
    expect(mayRetryOnNewConnection('update')).toBe(false);
  });

  it("relays an answer's headers without upstream's connection ones, repeated ones kept, and says it came from upstream", () => {
    const out = responseHeaders(
      answer(200, [
        'Content-Type',
        'application/json',
        'Transfer-Encoding',
        'chunked',
        'Connection',
        'keep-alive',
        'Keep-Alive',
        'timeout=5',
        'Warning',
        '299 - "a"',
        'Warning',
        '299 - "b"',
        'Content-Length',
        '12',
      ]),
      'request',
    );
    expect(out).toEqual({
      'Content-Type': 'application/json',
      Warning: ['299 - "a"', '299 - "b"'],
      'Content-Length': '12',
      'X-Edgebox-Source': 'upstream',
    });
  });

  it('keeps every header of a switched upgrade; a refused one loses its length (relayed to close)', () => {
    const raw = ['Connection', 'Upgrade', 'Upgrade', 'SPDY/3.1', 'Content-Length', '3'];
    expect(responseHeaders(answer(101, raw), 'upgrade')).toEqual({
      Connection: 'Upgrade',
      Upgrade: 'SPDY/3.1',
      'Content-Length': '3',
      'X-Edgebox-Source': 'upstream',
    });
    expect(responseHeaders(answer(403, raw), 'upgrade')).toEqual({
      'X-Edgebox-Source': 'upstream',
    });
  });

  it("keeps a server URL's path as a prefix", () => {
    expect(upstreamPath(upstream, '/api/v1/pods?limit=1')).toBe('/prefix/api/v1/pods?limit=1');
  });
});
