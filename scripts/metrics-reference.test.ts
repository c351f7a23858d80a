import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { METRICS_DOC, metricsReference } from './metrics-reference.ts';

describe('docs/metrics.md', () => {
  it('is what the metric registries say (node scripts/metrics-reference.ts writes it)', () => {
    expect(readFileSync(METRICS_DOC, 'utf8')).toBe(metricsReference());
  });
});
