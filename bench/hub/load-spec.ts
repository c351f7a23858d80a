import { z } from 'zod';

/** What load-client.ts is asked to do (its one JSON argument). */
export const loadSpecSchema = z.object({
  url: z.url(),
  headers: z.record(z.string(), z.string()).default({}),
  /** latency: one request at a time; throughput: `concurrency` keep-alive connections, flat out. */
  mode: z.enum(['latency', 'throughput']),
  requests: z.number().int().positive().default(2000),
  warmup: z.number().int().min(0).default(200),
  concurrency: z.number().int().positive().default(16),
  durationMs: z.number().int().positive().default(3000),
  /** Every answer must carry this `X-Edgebox-Source` (when given). */
  expectSource: z.string().optional(),
  /** The first answer must be a list of this many items (when given). */
  expectItems: z.number().int().min(0).optional(),
});
export type LoadSpec = z.input<typeof loadSpecSchema>;

/** What it prints (one JSON line). */
export const loadResultSchema = z.object({
  requests: z.number(),
  errors: z.number(),
  firstError: z.string().optional(),
  p50Ms: z.number(),
  p99Ms: z.number(),
  meanMs: z.number(),
  reqPerSec: z.number(),
  bytesPerResponse: z.number(),
});
export type LoadResult = z.infer<typeof loadResultSchema>;
