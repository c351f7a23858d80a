import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { metricsHandler } from '../../src/metrics.ts';
import type { CacheLoss } from '../cache/store-records.ts';
import type { HubStatus } from '../hub-status.ts';
import { LOCAL_SOURCE, SOURCE_HEADER } from '../response-source.ts';

/**
 * The hub's own endpoints. `/healthz` and `/readyz` would normally reach
 * kube-apiserver; the hub answers them itself (DESIGN), so a node component
 * probing "its apiserver" learns whether its local API is serving, which it
 * is even offline. Their responses say `X-Edgebox-Source: cache`: the two
 * values mean "from kube-apiserver" and "answered on the node".
 */
export const HUB_ENDPOINT_PATHS: ReadonlySet<string> = new Set([
  '/healthz',
  '/livez',
  '/readyz',
  '/metrics',
  '/edgebox/status',
]);

export interface HubEndpointDeps {
  /** The store is open and the hub is not shutting down. */
  isReady(): boolean;
  /** Set when the store was unusable at start and moved aside (the node lost its cache). */
  cacheLoss(): CacheLoss | undefined;
  /** Some server answers: the hub forwards rather than answering from its cache. */
  upstreamUp(): boolean;
  registry: Registry;
  status(): Promise<HubStatus>;
}

export function isHubEndpoint(method: string | undefined, path: string): boolean {
  return (method === 'GET' || method === 'HEAD') && HUB_ENDPOINT_PATHS.has(path);
}

function text(res: ServerResponse, code: number, body: string): void {
  res.writeHead(code, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-cache, private',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(body);
}

/**
 * Ready while the store is open; a hub that lost its cache is ready only
 * while upstream answers (it then forwards), and says what was lost either
 * way: offline it could answer nothing the node relies on.
 */
function readyz(res: ServerResponse, deps: HubEndpointDeps): void {
  if (!deps.isReady()) {
    text(res, 503, 'not ready: the cache store is not open');
    return;
  }
  const loss = deps.cacheLoss();
  if (loss === undefined) {
    text(res, 200, 'ok');
    return;
  }
  const lost = `the node's cache was lost at ${loss.at} (the store could not be opened: ${loss.reason}; moved aside to ${loss.movedTo})`;
  if (deps.upstreamUp())
    text(res, 200, `ok: ${lost}; it is rebuilt from kube-apiserver as components read`);
  else
    text(
      res,
      503,
      `not ready: ${lost} and kube-apiserver is unreachable: reads get 503s until it is back`,
    );
}

export function serveHubEndpoint(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  deps: HubEndpointDeps,
): void {
  res.setHeader(SOURCE_HEADER, LOCAL_SOURCE);
  switch (path) {
    case '/healthz':
    case '/livez':
      text(res, 200, 'ok');
      return;
    case '/readyz':
      readyz(res, deps);
      return;
    case '/metrics':
      metricsHandler(deps.registry)(req, res);
      return;
    case '/edgebox/status':
      deps.status().then(
        (status) => {
          const body = JSON.stringify(status);
          res.writeHead(200, {
            'Content-Type': 'application/json',
            'Content-Length': Buffer.byteLength(body),
            'Cache-Control': 'no-cache, private',
          });
          res.end(body);
        },
        (err: unknown) => {
          text(res, 500, `collecting status failed: ${(err as Error).message}`);
        },
      );
      return;
    default:
      text(res, 404, 'not found');
  }
}
