import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { failedRow, progress, verdict, type BenchRow } from './bench-report.ts';
import { KUBELET } from './bench-cluster.ts';
import { HubProcess, type PlainAnswer } from './hub-process.ts';
import { formatMs } from './latency-stats.ts';
import { podName } from './pod-fixture.ts';

const FILL = fileURLToPath(new URL('./fill-store.ts', import.meta.url));
export const COLD_START_OBJECTS = 100_000;
const PER_LIST = 1000;
const TARGET_MS = 1000;
/** fill-store.ts names the namespace of list k `bench-<k>`; pod 0 is in the first. */
const FIRST_POD_PATH = `/api/v1/namespaces/bench-0/pods/${podName(0)}`;

/** Writes 100,000 recorded pods into `dataDir` (a child process; about half a GB of LevelDB). */
export function fillColdStore(dataDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [FILL, JSON.stringify({ dataDir, count: COLD_START_OBJECTS, perList: PER_LIST })],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`filling the store failed (${code}): ${err.trim().slice(-300)}`)),
    );
  });
}

/** An "apiserver" that accepts connections and never answers: a link that died silently. */
async function silentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const fromCache = (a: PlainAnswer) => a.status === 200 && a.source === 'cache';

async function timeToFirstAnswer(
  command: readonly string[],
  dataDir: string,
  upstream: string,
  logFile: string,
  extraArgs: string[] = [],
  accept: (a: PlainAnswer) => boolean = fromCache,
): Promise<number> {
  const hub = await HubProcess.spawn({
    command,
    servers: [upstream],
    dataDir,
    logFile,
    nodeName: 'node-0',
    extraArgs,
  });
  try {
    return (await hub.firstAnswer(FIRST_POD_PATH, KUBELET, accept)).sinceSpawnMs;
  } finally {
    await hub.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
}

export interface ColdStartCommand {
  label: string;
  command: readonly string[];
}

/**
 * From spawning `edgebox hub` on a store of 100,000 pods to its first answer
 * (a kubelet GET, from the cache) with no upstream: one that refuses
 * connections (the target), and one that accepts and never answers, with the
 * default --health-timeout (how long a silently dead link delays the boot).
 */
export async function measureColdStart(
  commands: readonly ColdStartCommand[],
  dataDir: string,
  work: string,
  refusingUpstream: string,
  quick: boolean,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const runs = quick ? 1 : 3;
  const log = join(work, 'cold-hub.log');
  const target = `≤ ${TARGET_MS} ms spawn → first answer`;
  const objects = COLD_START_OBJECTS.toLocaleString('en');
  const first = commands[0];
  if (first !== undefined) {
    // LevelDB replays the log the writer left (up to a write buffer) on the next open.
    const measurement = `cold start, ${objects} objects cached, first open after they were written (${first.label})`;
    progress(measurement);
    try {
      const ms = await timeToFirstAnswer(first.command, dataDir, refusingUpstream, log);
      rows.push({
        measurement,
        measured: `${formatMs(ms)} (LevelDB replays its log)`,
        target,
        verdict: verdict(ms <= TARGET_MS),
      });
    } catch (err) {
      rows.push(failedRow(measurement, target, err));
    }
  }
  for (const c of commands) {
    const measurement = `cold start, ${objects} objects cached, upstream refuses (${c.label})`;
    progress(measurement);
    try {
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        times.push(await timeToFirstAnswer(c.command, dataDir, refusingUpstream, log));
      }
      rows.push({
        measurement,
        measured: `${formatMs(median(times))} median (${times.map((t) => t.toFixed(0)).join(', ')} ms)`,
        target,
        verdict: verdict(median(times) <= TARGET_MS),
      });
    } catch (err) {
      rows.push(failedRow(measurement, target, err));
    }
  }
  // The floor: the same start on an empty store is Node and module loading alone.
  for (const c of commands) {
    const measurement = `cold start, empty store: Node and module loading alone (${c.label})`;
    progress(measurement);
    try {
      const empty = join(work, `cold-empty-${commands.indexOf(c)}`);
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        times.push(
          await timeToFirstAnswer(
            c.command,
            empty,
            refusingUpstream,
            log,
            [],
            (a) => a.source === 'cache',
          ),
        );
      }
      rows.push({
        measurement,
        measured: `${formatMs(median(times))} median (${times.map((t) => t.toFixed(0)).join(', ')} ms)`,
        target: '',
        verdict: '',
      });
    } catch (err) {
      rows.push({ ...failedRow(measurement, '', err), verdict: '' });
    }
  }
  if (first !== undefined) {
    const measurement = `cold start, upstream accepts but never answers, default --health-timeout 2s (${first.label})`;
    progress(measurement);
    const silent = await silentServer();
    try {
      const ms = await timeToFirstAnswer(
        first.command,
        dataDir,
        silent.url,
        join(work, 'cold-hub.log'),
        ['--health-timeout', '2s'],
      );
      rows.push({
        measurement,
        measured: `${formatMs(ms)} spawn → first answer`,
        target: '',
        verdict: '',
      });
    } catch (err) {
      rows.push({ ...failedRow(measurement, '', err), verdict: '' });
    } finally {
      await silent.close();
    }
  }
  return rows;
}
