import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { metricsHandler } from '../src/metrics.ts';
import type { EcmHealth } from './ecm.ts';

/** Serves /healthz (200 once informers are synced, leading or standby) and /metrics. */
export function createEcmHttpServer(health: () => EcmHealth, registry: Registry): Server {
  const metrics = metricsHandler(registry);
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'Content-Type': 'text/plain', Allow: 'GET, HEAD' });
      res.end('method not allowed\n');
      return;
    }
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      const h = health();
      res.writeHead(h.ok ? 200 : 503, { 'Content-Type': 'text/plain' });
      res.end(`${h.ok ? 'ok' : 'not ok'}: ${h.detail}\n`);
      return;
    }
    if (path === '/metrics') {
      metrics(req, res);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found: try /healthz or /metrics\n');
  });
}

/** Splits "host:port" (":10290" = all interfaces) for server.listen. */
export function parseListenAddress(text: string): { host: string; port: number } | Error {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim());
  if (m === null) return new Error(`listen address ${JSON.stringify(text)} is not host:port`);
  const port = Number(m[3]);
  if (port > 65535) return new Error(`listen address ${JSON.stringify(text)}: port out of range`);
  return { host: m[1] ?? (m[2] === '' || m[2] === undefined ? '0.0.0.0' : m[2]), port };
}
