import { createServer, get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetricsRegistry, metricsHandler } from './metrics.ts';

describe('metrics', () => {
  it('serves its registry in the Prometheus text format', async () => {
    const registry = createMetricsRegistry();
    const c = new Counter({
      name: 'edgebox_test_total',
      help: 'a test counter',
      registers: [registry],
    });
    c.inc(3);
    const server = createServer(metricsHandler(registry));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const body = await new Promise<{ type: string; text: string }>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ type: String(res.headers['content-type']), text }));
      }).on('error', reject);
    });
    server.close();
    expect(body.type).toContain('text/plain');
    expect(body.text).toContain('edgebox_test_total 3');
    expect(body.text).toContain('edgebox_process_resident_memory_bytes');
  });

  it('keeps registries apart so parts can run side by side', () => {
    const a = createMetricsRegistry();
    const b = createMetricsRegistry();
    new Counter({ name: 'edgebox_only_in_a', help: 'x', registers: [a] });
    expect(a.getSingleMetric('edgebox_only_in_a')).toBeDefined();
    expect(b.getSingleMetric('edgebox_only_in_a')).toBeUndefined();
  });
});
