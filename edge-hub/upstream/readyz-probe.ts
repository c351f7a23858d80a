import type { IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ProbeResult } from './health-checker.ts';
import { nodeHttp } from '../node-http.ts';
import type { Upstream } from './upstream.ts';

function get(upstream: Upstream, path: string, timeoutMs: number, auth: string | undefined) {
  return new Promise<IncomingMessage>((resolve, reject) => {
    const request = upstream.url.protocol === 'https:' ? httpsRequest : nodeHttp.request;
    const url = new URL(path, upstream.url);
    const headers: Record<string, string> = { 'User-Agent': 'edgebox-hub/health', Accept: '*/*' };
    if (auth !== undefined) headers.Authorization = auth;
    const req = request(url, { method: 'GET', agent: upstream.agent, headers, timeout: timeoutMs });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res));
      res.on('error', reject);
    });
    req.end();
  });
}

/**
 * GET /readyz (kube-apiserver's "ready to serve"), falling back to /healthz
 * when a server has no /readyz (404). Only a 2xx counts: a 500 from /readyz
 * means the apiserver is up but cannot serve yet (etcd down), which for the
 * node is the same as offline.
 */
export function createReadyzProbe(): (u: Upstream, timeoutMs: number) => Promise<ProbeResult> {
  const pathOf = new Map<string, string>();
  return async (upstream, timeoutMs) => {
    const path = pathOf.get(upstream.name) ?? '/readyz';
    try {
      const auth = await upstream.authorization();
      const res = await get(upstream, path, timeoutMs, auth);
      const code = res.statusCode ?? 0;
      if (code === 404 && path === '/readyz') {
        pathOf.set(upstream.name, '/healthz');
        const again = await get(upstream, '/healthz', timeoutMs, auth);
        return okOrNot(again.statusCode ?? 0, '/healthz');
      }
      return okOrNot(code, path);
    } catch (err) {
      return { ok: false, reason: `GET ${path}: ${(err as Error).message}` };
    }
  };
}

function okOrNot(code: number, path: string): ProbeResult {
  if (code >= 200 && code < 300) return { ok: true };
  return { ok: false, reason: `GET ${path} answered ${code}` };
}
