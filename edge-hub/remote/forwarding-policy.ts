import type { Agent, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { SOURCE_HEADER, UPSTREAM_SOURCE } from '../response-source.ts';
import type { Upstream } from '../upstream/upstream.ts';

/**
 * How a request goes to kube-apiserver and how its answer comes back, for
 * every way one reaches upstream (RemoteProxy's requests, upgrade-proxy's
 * exec/attach/port-forward): which headers go and come back, whose
 * credentials, what is asked for when the answer is recorded, which
 * requests may be tried on another server, and the source header. Written
 * once: a header rule kept per transport is a security fix made in one
 * place and missed in another.
 */

/** Verbs that only read: safe to send to another server, answerable from the cache. */
const READ_VERBS: ReadonlySet<string> = new Set(['get', 'list', 'watch']);

export function isReadVerb(verb: string): boolean {
  return READ_VERBS.has(verb);
}

/**
 * May a request that failed on one server be sent to the next? A read
 * always; a write only when it never reached the first (it may have been
 * applied: never send it twice).
 */
export function mayRetryElsewhere(verb: string, reachedUpstream: boolean): boolean {
  return isReadVerb(verb) || !reachedUpstream;
}

/**
 * May a request whose kept-alive connection broke before any answer be sent
 * again, once, on a new one? A server closing an idle connection races the
 * request that reuses it: that is no failure of the server. Only reads:
 * a write may have arrived before the close.
 */
export function mayRetryOnNewConnection(verb: string): boolean {
  return isReadVerb(verb);
}

/** The headers of the client's connection to the hub, not of its request (RFC 9110 7.6.1). */
const CONNECTION_HEADERS = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
];

/**
 * Never forwarded on a plain request: the connection's own headers, an
 * upgrade a plain request cannot carry, and `Expect` (the hub read the body
 * whole before forwarding: upstream must not wait for it).
 */
const DROPPED_REQUEST_HEADERS = [...CONNECTION_HEADERS, 'upgrade', 'expect'];

/**
 * An upgrade keeps `Connection: Upgrade` and `Upgrade`: they are the
 * request (SPDY or WebSocket) the hub relays byte for byte once switched.
 */
const DROPPED_UPGRADE_HEADERS = CONNECTION_HEADERS.filter((h) => h !== 'connection');

/**
 * Response headers that describe upstream's connection to the hub, not the
 * answer: the hub frames the answer to its client itself.
 */
const DROPPED_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);

export type ForwardKind = 'request' | 'upgrade';

/**
 * The client's headers as they go upstream (changed in place). An answer
 * that is recorded or filtered is asked for as uncompressed JSON: kubelet
 * asks for protobuf first and accepts JSON, the cache stores JSON it parses
 * as it streams, and the response filters rewrite JSON.
 */
export function prepareRequestHeaders(
  headers: IncomingHttpHeaders,
  kind: ForwardKind,
  readsBody: boolean,
): void {
  for (const h of kind === 'upgrade' ? DROPPED_UPGRADE_HEADERS : DROPPED_REQUEST_HEADERS) {
    delete headers[h];
  }
  if (readsBody) {
    headers.accept = 'application/json';
    headers['accept-encoding'] = 'identity';
  }
}

/**
 * Whose credentials a request carries upstream. A client's own bearer token
 * goes as is, on connections without the hub's client certificate
 * (kube-apiserver tries x509 first: the request would run as the hub);
 * any other request gets the hub's credentials.
 */
export interface Credentials {
  agent: Agent;
  /** true: the client's own Authorization is kept; else the hub's is put on. */
  own: boolean;
}

export function credentialsOf(headers: IncomingHttpHeaders, upstream: Upstream): Credentials {
  const own = headers.authorization !== undefined;
  return { own, agent: own ? upstream.passthroughAgent : upstream.agent };
}

/** Puts the hub's `Authorization` (from Upstream.authorization()) on a request without its own. */
export function putHubAuthorization(
  headers: IncomingHttpHeaders,
  authorization: string | undefined,
): void {
  if (authorization !== undefined) headers.authorization = authorization;
  else delete headers.authorization;
}

/**
 * The answer's headers as the client gets them: upstream's, less those of
 * upstream's connection (all of them kept on a switched upgrade, whose
 * bytes are relayed as they are; a refused upgrade's body is relayed to the
 * connection's close, so its length goes too), and `X-Edgebox-Source:
 * upstream`. Repeated headers stay repeated.
 */
export function responseHeaders(from: IncomingMessage, kind: ForwardKind): OutgoingHttpHeaders {
  const switched = kind === 'upgrade' && from.statusCode === 101;
  const out: Record<string, string | string[]> = {};
  const names = new Map<string, string>();
  const raw = from.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const key = name.toLowerCase();
    if (!switched && DROPPED_RESPONSE_HEADERS.has(key)) continue;
    if (kind === 'upgrade' && !switched && key === 'content-length') continue;
    const value = raw[i + 1] ?? '';
    const first = names.get(key);
    if (first === undefined) {
      names.set(key, name);
      out[name] = value;
    } else {
      const prev = out[first] ?? [];
      out[first] = Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
  }
  out[SOURCE_HEADER] = UPSTREAM_SOURCE;
  return out;
}

/** Where a request goes on a server; a server URL's path (a proxy prefix) is kept. */
export function upstreamPath(upstream: Upstream, requestUrl: string): string {
  const prefix = upstream.url.pathname === '/' ? '' : upstream.url.pathname.replace(/\/$/, '');
  return `${prefix}${requestUrl}`;
}
