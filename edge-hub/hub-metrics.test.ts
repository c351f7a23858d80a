import { Registry } from 'prom-client';
import { describe, expect, it, vi } from 'vitest';
import { HubMetrics } from './hub-metrics.ts';

describe('HubMetrics.observeRequest', () => {
  it('counts each label set and looks its metric children up only once', async () => {
    const registry = new Registry();
    const metrics = new HubMetrics(registry, () => 0);
    const labels = vi.spyOn(metrics.requests, 'labels');
    for (let i = 0; i < 3; i++) metrics.observeRequest('get', 'kubelet', 'upstream', 200, 0.001);
    metrics.observeRequest('get', 'kubectl', 'upstream', 200, 0.001);
    metrics.observeRequest('watch', 'kubelet', 'upstream', 200, 30);

    const text = await registry.metrics();
    expect(text).toContain(
      'edgebox_hub_requests_total{verb="get",component="kubelet",source="upstream",code="200"} 3',
    );
    expect(text).toContain(
      'edgebox_hub_requests_total{verb="get",component="kubectl",source="upstream",code="200"} 1',
    );
    expect(text).toContain(
      'edgebox_hub_request_duration_seconds_count{verb="get",source="upstream"} 4',
    );
    // Watches last as long as their timeout: not latency.
    expect(text).not.toContain('edgebox_hub_request_duration_seconds_count{verb="watch"');
    expect(labels).toHaveBeenCalledTimes(3);
  });
});
