import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { failedRow, progress, verdict, type BenchRow } from './bench-report.ts';
import { KUBELET } from './bench-cluster.ts';
import { REPO_DIR } from './compiled-hub.ts';
import { HubProcess, readMemory, type MemoryReading } from './hub-process.ts';
import { formatMb } from './latency-stats.ts';
import { runLoad } from './load-run.ts';
import { NODE_LIST_PATH } from './offline-lists.ts';

const RSS_TARGET_MB = 80;

/** RSS of a Node process that has done `script` and then idles: what a part costs on its own. */
async function idleProcessMemory(args: string[]): Promise<MemoryReading> {
  const child = spawn(process.execPath, args, { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        out += c;
        if (out.includes('ready')) resolve();
      });
      child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
      child.on('error', reject);
      child.on('exit', (code) =>
        reject(new Error(`exited ${code} before it was ready: ${err.trim()}`)),
      );
    });
    if (child.pid === undefined) throw new Error('no pid');
    return readMemory(child.pid);
  } finally {
    child.kill('SIGKILL');
  }
}

/** What `edgebox hub` imports besides Node and its own code (client-node only for kubeconfigs). */
const HUB_DEPENDENCIES = ['zod', 'level', 'pino', 'prom-client', 'http-proxy', 'commander', 'yaml'];

const IDLE = "process.stdout.write('ready\\n'); setInterval(() => {}, 1e6);";

/** Where a hub's memory goes: Node itself, type stripping, the heavy imports. */
export async function measureBaselines(work: string): Promise<BenchRow[]> {
  progress('memory baselines');
  const typed = join(work, 'idle.ts');
  writeFileSync(
    typed,
    `const ready: string = 'ready\\n';\nprocess.stdout.write(ready);\nsetInterval(() => {}, 1e6);\n`,
  );
  const cases: Array<[string, string[]]> = [
    ['Node 24 alone, idle', ['-e', IDLE]],
    ['Node 24 running a .ts file (type stripping)', [typed]],
    [
      'Node 24 + import @kubernetes/client-node',
      ['--input-type=module', '-e', `await import('@kubernetes/client-node'); ${IDLE}`],
    ],
    ['Node 24 + import zod', ['--input-type=module', '-e', `await import('zod'); ${IDLE}`]],
    [
      `Node 24 + every other hub dependency (${HUB_DEPENDENCIES.join(', ')})`,
      [
        '--input-type=module',
        '-e',
        `${HUB_DEPENDENCIES.map((d) => `await import('${d}');`).join(' ')} ${IDLE}`,
      ],
    ],
  ];
  const rows: BenchRow[] = [];
  let alone: number | undefined;
  for (const [what, args] of cases) {
    try {
      const m = await idleProcessMemory(args);
      alone ??= m.rssBytes;
      const delta = m.rssBytes === alone ? '' : ` (+${formatMb(m.rssBytes - alone)})`;
      rows.push({
        measurement: `RSS breakdown: ${what}`,
        measured: `${formatMb(m.rssBytes)}${delta}`,
        target: '',
        verdict: '',
      });
    } catch (err) {
      rows.push({ ...failedRow(`RSS breakdown: ${what}`, '', err), verdict: '' });
    }
  }
  return rows;
}

/**
 * Does `edgebox hub` load @kubernetes/client-node when it starts with plain
 * --server URLs (it needs it only for --upstream-kubeconfig)? A resolve hook
 * preloaded into the hub notes every module it loads.
 */
export async function detectClientNode(
  command: readonly string[],
  dir: string,
  deadUpstream: string,
  logFile: string,
): Promise<BenchRow> {
  const measurement = 'hub loads @kubernetes/client-node at start (plain --server)';
  progress(measurement);
  mkdirSync(dir, { recursive: true });
  const seen = join(dir, 'loaded.txt');
  const hook = join(dir, 'note-imports.mjs');
  writeFileSync(
    hook,
    `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context);
    if (result.url.includes('/@kubernetes/client-node/')) appendFileSync(${JSON.stringify(seen)}, result.url + '\\n');
    return result;
  },
});
`,
  );
  const [program, ...rest] = command;
  if (program === undefined) throw new Error('no hub command');
  const hub = await HubProcess.spawn({
    command: [program, '--import', pathToFileURL(hook).href, ...rest],
    servers: [deadUpstream],
    dataDir: join(dir, 'data'),
    logFile,
    nodeName: 'node-0',
  });
  try {
    await hub.waitReady();
    await hub.firstAnswer(NODE_LIST_PATH, KUBELET, (a) => a.source === 'cache');
  } catch (err) {
    return { ...failedRow(measurement, '', err), verdict: '' };
  } finally {
    await hub.stop();
  }
  const loaded = existsSync(seen);
  return {
    measurement,
    measured: loaded
      ? 'yes: imported eagerly (see the client-node row above for its cost)'
      : 'no: loaded only for --upstream-kubeconfig',
    target: '',
    verdict: '',
  };
}

export interface HubMemoryRun {
  label: string;
  command: readonly string[];
  /** A store holding the 10,000 pods (or an empty dir for the baseline). */
  dataDir: string;
  deadUpstream: string;
  logFile: string;
  nodeName: string;
  /** Cached objects in the store, for the row's name; 0 = the empty-hub baseline. */
  objects: number;
  quick: boolean;
}

/**
 * RSS of `edgebox hub` offline on a store: after kubelet's node LIST has been
 * served a few times (the figure held to the target), and the peak after an
 * offline LIST of every cached pod.
 */
export async function measureHubMemory(run: HubMemoryRun): Promise<BenchRow[]> {
  const name =
    run.objects === 0
      ? `RSS: hub, empty store (${run.label})`
      : `RSS: hub, ${run.objects.toLocaleString('en')} pods cached, offline (${run.label})`;
  const target = run.objects === 0 ? '' : `≤ ${RSS_TARGET_MB} MB`;
  progress(name);
  const hub = await HubProcess.spawn({
    command: run.command,
    servers: [run.deadUpstream],
    dataDir: run.dataDir,
    logFile: run.logFile,
    nodeName: run.nodeName,
  });
  try {
    await hub.waitReady();
    const rows: BenchRow[] = [];
    if (run.objects === 0) {
      await hub.firstAnswer(NODE_LIST_PATH, KUBELET, (a) => a.source === 'cache');
      const m = hub.memory();
      return [{ measurement: name, measured: formatMb(m.rssBytes), target, verdict: '' }];
    }
    const served = await runLoad({
      url: `${hub.url}${NODE_LIST_PATH}`,
      headers: KUBELET,
      mode: 'latency',
      warmup: 0,
      requests: 20,
      expectSource: 'cache',
    });
    if (served.errors > 0) throw new Error(`node LIST failed: ${served.firstError ?? '?'}`);
    const steady = hub.memory();
    rows.push({
      measurement: name,
      measured: `${formatMb(steady.rssBytes)} after serving kubelet's node LIST`,
      target,
      verdict: verdict(steady.rssBytes <= RSS_TARGET_MB * 1024 * 1024),
    });
    const all = await runLoad({
      url: `${hub.url}/api/v1/pods`,
      headers: KUBELET,
      mode: 'latency',
      warmup: 0,
      requests: run.quick ? 1 : 3,
      expectSource: 'cache',
    });
    if (all.errors > 0) throw new Error(`LIST of all pods failed: ${all.firstError ?? '?'}`);
    const peak = hub.memory();
    rows.push({
      measurement: `  peak RSS while listing all of them (${run.label})`,
      measured: `${formatMb(peak.peakBytes)} peak, ${formatMb(peak.rssBytes)} after`,
      target: '',
      verdict: '',
    });
    return rows;
  } finally {
    await hub.stop();
  }
}
