// The load generator, run as its own process (see load-run.ts) so that its
// CPU and event loop are not the servers'. Input: one JSON argument (a
// LoadSpec); output: one JSON line (a LoadResult) on stdout.
import { Agent, request } from 'node:http';
import type { z } from 'zod';
import { summarizeLatencies } from './latency-stats.ts';
import { loadSpecSchema, type LoadResult } from './load-spec.ts';

interface Answer {
  status: number;
  source: string | undefined;
  bytes: number;
  body?: Buffer;
}

function get(
  url: URL,
  headers: Record<string, string>,
  agent: Agent,
  keepBody: boolean,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, headers: { Accept: 'application/json', ...headers } });
    req.on('error', reject);
    req.on('response', (res) => {
      let bytes = 0;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (keepBody) chunks.push(c);
      });
      res.on('error', reject);
      res.on('end', () => {
        const source = res.headers['x-edgebox-source'];
        resolve({
          status: res.statusCode ?? 0,
          source: typeof source === 'string' ? source : undefined,
          bytes,
          ...(keepBody ? { body: Buffer.concat(chunks) } : {}),
        });
      });
    });
    req.end();
  });
}

class Checker {
  errors = 0;
  firstError: string | undefined;
  readonly #spec: z.output<typeof loadSpecSchema>;
  constructor(spec: z.output<typeof loadSpecSchema>) {
    this.#spec = spec;
  }

  fail(reason: string): void {
    this.errors += 1;
    this.firstError ??= reason;
  }

  check(a: Answer): void {
    if (a.status !== 200) return this.fail(`HTTP ${a.status}`);
    if (this.#spec.expectSource !== undefined && a.source !== this.#spec.expectSource) {
      this.fail(`X-Edgebox-Source ${a.source ?? '(none)'}, expected ${this.#spec.expectSource}`);
    }
  }

  checkItems(a: Answer): void {
    if (this.#spec.expectItems === undefined || a.body === undefined) return;
    const items = (JSON.parse(a.body.toString('utf8')) as { items?: unknown[] }).items;
    if (items?.length !== this.#spec.expectItems) {
      this.fail(`a list of ${items?.length ?? 'no'} items, expected ${this.#spec.expectItems}`);
    }
  }
}

async function run(spec: z.output<typeof loadSpecSchema>): Promise<LoadResult> {
  const url = new URL(spec.url);
  const connections = spec.mode === 'latency' ? 1 : spec.concurrency;
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const checker = new Checker(spec);
  const latencies: number[] = [];
  let bytes = 0;
  const one = async (measure: boolean, keepBody = false) => {
    const started = performance.now();
    try {
      const a = await get(url, spec.headers, agent, keepBody);
      const ms = performance.now() - started;
      checker.check(a);
      checker.checkItems(a);
      if (measure) {
        latencies.push(ms);
        bytes += a.bytes;
      }
    } catch (err) {
      checker.fail(err instanceof Error ? err.message : String(err));
    }
  };
  await one(false, spec.expectItems !== undefined);
  let elapsedMs: number;
  if (spec.mode === 'latency') {
    for (let i = 0; i < spec.warmup; i++) await one(false);
    const started = performance.now();
    for (let i = 0; i < spec.requests; i++) await one(true);
    elapsedMs = performance.now() - started;
  } else {
    const warmupDeadline = performance.now() + Math.min(1000, spec.durationMs / 3);
    const worker = async (measure: boolean, deadline: number) => {
      while (performance.now() < deadline) await one(measure);
    };
    await Promise.all(Array.from({ length: connections }, () => worker(false, warmupDeadline)));
    const started = performance.now();
    const deadline = started + spec.durationMs;
    await Promise.all(Array.from({ length: connections }, () => worker(true, deadline)));
    elapsedMs = performance.now() - started;
  }
  agent.destroy();
  const summary = summarizeLatencies(latencies);
  return {
    requests: summary.count,
    errors: checker.errors,
    ...(checker.firstError === undefined ? {} : { firstError: checker.firstError }),
    p50Ms: summary.p50Ms,
    p99Ms: summary.p99Ms,
    meanMs: summary.meanMs,
    reqPerSec: summary.count / (elapsedMs / 1000),
    bytesPerResponse: summary.count === 0 ? 0 : bytes / summary.count,
  };
}

const spec = loadSpecSchema.parse(JSON.parse(process.argv[2] ?? '{}'));
process.stdout.write(`${JSON.stringify(await run(spec))}\n`);
