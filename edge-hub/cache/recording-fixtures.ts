import { mkdtemp } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RequestInfoError, parseRequestInfo } from '../../src/kube/request-info.ts';
import type { CacheManager } from './cache-manager.ts';
import type { HubRequest } from '../hub-request.ts';

/** Test fixtures: requests as the hub classifies them, and apiserver-shaped bodies. */

export const JSON_HEADERS: IncomingHttpHeaders = { 'content-type': 'application/json' };

export function hubRequest(
  component: string,
  method: string,
  url: string,
  body?: Buffer | string | object,
): HubRequest {
  const info = parseRequestInfo(method, url);
  if (info instanceof RequestInfoError) throw info;
  const query = new URL(url, 'http://hub.invalid').searchParams;
  const req: HubRequest = { component, info, query };
  if (body !== undefined) {
    req.body = Buffer.isBuffer(body)
      ? body
      : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  }
  return req;
}

export interface PodOptions {
  namespace?: string;
  node?: string;
  rv: string;
  labels?: Record<string, string>;
  phase?: string;
}

export function pod(name: string, opts: PodOptions): Record<string, unknown> {
  return {
    metadata: {
      name,
      namespace: opts.namespace ?? 'default',
      uid: `uid-${name}`,
      resourceVersion: opts.rv,
      ...(opts.labels === undefined ? {} : { labels: opts.labels }),
    },
    spec: { nodeName: opts.node ?? 'node-a', containers: [{ name: 'c', image: 'busybox' }] },
    status: { phase: opts.phase ?? 'Running' },
  };
}

export function list(kind: string, rv: string, items: unknown[], more?: string): Buffer {
  const metadata: Record<string, string> = { resourceVersion: rv };
  if (more !== undefined) metadata.continue = more;
  return Buffer.from(JSON.stringify({ kind, apiVersion: 'v1', metadata, items }));
}

export function watchEvent(type: string, object: unknown): string {
  return `${JSON.stringify({ type, object })}\n`;
}

/** Feeds an upstream answer through the cache's recorder; true when it was recorded at all. */
export async function record(
  cache: CacheManager,
  req: HubRequest,
  body: Buffer | string,
  status = 200,
  headers: IncomingHttpHeaders = JSON_HEADERS,
): Promise<boolean> {
  const recorder = cache.recorder(req, status, headers);
  if (recorder === undefined) return false;
  recorder.write(Buffer.isBuffer(body) ? body : Buffer.from(body));
  await recorder.end();
  return true;
}

export function tempDataDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'edgebox-cache-'));
}

export function names(listBody: unknown): string[] {
  const items = (listBody as { items?: Array<{ metadata: { name: string } }> }).items ?? [];
  return items.map((i) => i.metadata.name);
}
