import type { IncomingMessage, ServerResponse } from 'node:http';
import { Registry, collectDefaultMetrics } from 'prom-client';

/**
 * prom-client's gauges named like counters, which Prometheus' own linter
 * (`promtool check metrics`) rejects; each is the sum of a gauge prom-client
 * also exposes by type (`nodejs_active_handles{type}`, ...).
 */
const MISNAMED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** One registry per process part, so tests can build several side by side. */
export function createMetricsRegistry(prefix = 'edgebox_'): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix });
  for (const name of MISNAMED_DEFAULT_METRICS) registry.removeSingleMetric(prefix + name);
  return registry;
}

/** Serves the registry in the Prometheus text format. */
export function metricsHandler(registry: Registry) {
  return (_req: IncomingMessage, res: ServerResponse): void => {
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'Content-Type': registry.contentType });
        res.end(text);
      },
      (err: unknown) => {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`collecting metrics failed: ${String(err)}\n`);
      },
    );
  };
}
