import { INSTALL_DIR } from '../../scripts/package/payload.ts';
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { failedRow, progress, verdict, type BenchRow } from './bench-report.ts';
import { KUBELET } from './bench-cluster.ts';
import { REPO_DIR } from './compiled-hub.ts';
import { HubProcess, readMemory, type MemoryReading } from './hub-process.ts';
import { formatMb } from './latency-stats.ts';
import { runLoad } from './load-run.ts';
import { NODE_LIST_PATH } from './offline-lists.ts';
import { call } from '../../test/support/http-call.ts';
import { ImportRecorder } from '../../test/support/import-recorder.ts';
import { leaseProtobufBody } from '../../test/support/kubelet-protobuf.ts';
import { bundleHub } from '../../scripts/bundle-hub.ts';

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
  /** Start with --upstream-kubeconfig (an offline server): its resolver child may load client-node, the hub not. */
  kubeconfig?: string,
): Promise<BenchRow> {
  const measurement = `hub loads @kubernetes/client-node at start (${kubeconfig === undefined ? 'plain --server' : '--upstream-kubeconfig'})`;
  progress(measurement);
  mkdirSync(dir, { recursive: true });
  const imports = new ImportRecorder(dir);
  const [program, ...rest] = command;
  if (program === undefined) throw new Error('no hub command');
  const hub = await HubProcess.spawn({
    command: [program, '--import', imports.hookUrl, ...rest],
    servers: kubeconfig === undefined ? [deadUpstream] : [],
    dataDir: join(dir, kubeconfig === undefined ? 'data' : 'data-kubeconfig'),
    logFile,
    nodeName: 'node-0',
    extraArgs: kubeconfig === undefined ? [] : ['--upstream-kubeconfig', kubeconfig],
  });
  try {
    await hub.waitReady();
    await hub.firstAnswer(NODE_LIST_PATH, KUBELET, (a) => a.source === 'cache');
    if (kubeconfig !== undefined) await resolverGone(hub.pid);
  } catch (err) {
    return { ...failedRow(measurement, '', err), verdict: '' };
  } finally {
    await hub.stop();
  }
  const byHub = imports.resolvedBy(hub.pid, '/@kubernetes/client-node/');
  const verdictText =
    byHub.length > 0
      ? 'yes: imported by the hub process (see the client-node row above for its cost)'
      : kubeconfig === undefined
        ? 'no: loaded only for --upstream-kubeconfig'
        : 'no: only its short-lived kubeconfig resolver child loads it';
  return { measurement, measured: verdictText, target: '', verdict: '' };
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
  // Builds and settings other than the unit's: the ≤ 80 MB target is the "as deployed" row's.
  const target = run.objects === 0 ? '' : 'reference (target: as deployed)';
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
    await serveNodeList(hub.url);
    const steady = hub.memory();
    rows.push({
      measurement: name,
      measured: `${formatMb(steady.rssBytes)} after serving kubelet's node LIST`,
      target,
      verdict: '',
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

/** The systemd unit that ships: the deployed row reads its Environment= and ExecStart= from it. */
export const HUB_UNIT_FILE = join(REPO_DIR, 'deploy/hub/edgebox-hub.service');

export interface HubUnit {
  /** Environment= assignments, in order (later ones win, as in systemd). */
  environment: Record<string, string>;
  /** The script ExecStart= runs with node, as installed (e.g. /usr/lib/edgebox/dist/hub/edgebox.cjs). */
  script: string;
  /** Whether ExecStart= runs the hub with --upstream-kubeconfig. */
  upstreamKubeconfig: boolean;
  /** Node's own flags on ExecStart= (between node and the script): V8 flags NODE_OPTIONS refuses. */
  nodeFlags: string[];
}

/** Unquotes one systemd word ("A=b c" or A=b). */
function unquote(word: string): string {
  return word.length >= 2 && word.startsWith('"') && word.endsWith('"') ? word.slice(1, -1) : word;
}

/** Environment= and the --upstream-kubeconfig flag of a hub unit (continuation lines joined). */
export function readHubUnit(path = HUB_UNIT_FILE): HubUnit {
  const lines = readFileSync(path, 'utf8').replace(/\\\n/g, ' ').split('\n');
  const environment: Record<string, string> = {};
  let upstreamKubeconfig = false;
  let nodeFlags: string[] = [];
  let script = '';
  for (const raw of lines) {
    const line = raw.trim();
    if (line.startsWith('Environment=')) {
      // Space-separated assignments, each possibly quoted.
      for (const word of line.slice('Environment='.length).match(/"[^"]*"|\S+/g) ?? []) {
        const assignment = unquote(word);
        const eq = assignment.indexOf('=');
        if (eq > 0) environment[assignment.slice(0, eq)] = assignment.slice(eq + 1);
      }
    }
    if (line.startsWith('ExecStart=')) {
      upstreamKubeconfig = /\s--upstream-kubeconfig[\s=]/.test(line);
      const words = line.slice('ExecStart='.length).split(/\s+/).slice(1);
      const at = words.findIndex((w) => !w.startsWith('-'));
      nodeFlags = words.slice(0, at === -1 ? 0 : at);
      script = at === -1 ? '' : (words[at] ?? '');
    }
  }
  return { environment, script, upstreamKubeconfig, nodeFlags };
}

/** Where the unit expects the build: where the edgebox package installs it (`npm run package`). */
export const UNIT_INSTALL_DIR = `${INSTALL_DIR}/`;

/**
 * Builds what the unit runs into `dir` as `npm run build` lays it out under
 * UNIT_INSTALL_DIR (the hub bundle in dist/hub/, package.json beside dist/,
 * node_modules linked) and resolves with the node command for the unit's
 * script there, or an Error saying why there is none.
 */
export async function buildUnitScript(unit: HubUnit, dir: string): Promise<string[] | Error> {
  if (!unit.script.startsWith(UNIT_INSTALL_DIR)) {
    return new Error(
      `the unit runs ${unit.script || '(no script)'}, not under ${UNIT_INSTALL_DIR}`,
    );
  }
  mkdirSync(dir, { recursive: true });
  try {
    await bundleHub(join(dir, 'dist/hub'));
  } catch (err) {
    return new Error(
      `bundling the hub failed: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  copyFileSync(join(REPO_DIR, 'package.json'), join(dir, 'package.json'));
  if (!existsSync(join(dir, 'node_modules'))) {
    symlinkSync(join(REPO_DIR, 'node_modules'), join(dir, 'node_modules'));
  }
  const script = join(dir, unit.script.slice(UNIT_INSTALL_DIR.length));
  if (!existsSync(script)) {
    return new Error(
      `the unit runs ${unit.script}, which npm run build does not write (${script})`,
    );
  }
  return [process.execPath, script];
}

export interface ProcessMemory {
  rssBytes: number;
  /** Proportional set size: shared pages split among the processes mapping them. */
  pssBytes: number;
  /** Pages only this process maps (what stopping it would give back). */
  privateBytes: number;
}

/** /proc/PID/smaps_rollup (Linux >= 4.14). */
export function readSmapsRollup(pid: number): ProcessMemory {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return {
    rssBytes: kb('Rss'),
    pssBytes: kb('Pss'),
    privateBytes: kb('Private_Clean') + kb('Private_Dirty'),
  };
}

/** Processes whose parent is `pid` (the hub's kubeconfig resolver while it runs). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) follows the command name in parentheses, which may hold spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** The resolver child is spawned before the hub listens; resolves once it has exited. */
export async function resolverGone(pid: number): Promise<void> {
  const deadline = performance.now() + 15_000;
  while (childrenOf(pid).length > 0) {
    if (performance.now() > deadline) throw new Error('the kubeconfig resolver did not exit');
    await delay(20);
  }
}

export interface DeployedHubRun {
  label: string;
  /** The hub as the unit runs it: [node, script] (buildUnitScript), or a build to compare. */
  command: readonly string[];
  /** Node flags from the unit's ExecStart=, put between node and the script. */
  nodeFlags: readonly string[];
  /** Environment= of the unit, possibly with a variant's changes (undefined: unset). */
  environment: Record<string, string | undefined>;
  kubeconfig: string;
  dataDir: string;
  logFile: string;
  nodeName: string;
  objects: number;
  /** Held to the target (the unit as it ships) or a variant for comparison. */
  target: boolean;
}

/** `command` ([node, script]) run as the unit runs it: its environment (undefined: unset) and node flags. */
export function deployedHubCommand(
  command: readonly string[],
  nodeFlags: readonly string[],
  environment: Record<string, string | undefined>,
): string[] {
  const [program, ...rest] = command;
  if (program === undefined) throw new Error('no hub command');
  const entries = Object.entries(environment);
  // env(1) wants its -u options before the assignments.
  const env = [
    ...entries.flatMap(([k, v]) => (v === undefined ? ['-u', k] : [])),
    ...entries.flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])),
  ];
  // env(1) execs node in its own place: the pid measured is the hub's.
  return ['/usr/bin/env', ...env, program, ...nodeFlags, ...rest];
}

/**
 * RSS, Pss and private memory of the hub as the systemd unit runs it: the
 * compiled build, the unit's Environment=, --upstream-kubeconfig (a kubeconfig
 * of the API double, which is stopped: offline, as the other rows), after its
 * kubeconfig resolver has come and gone and kubelet's node LIST was served
 * from the cache 20 times.
 */
export async function measureDeployedHub(run: DeployedHubRun): Promise<BenchRow> {
  const name = `RSS: hub as deployed by deploy/hub/edgebox-hub.service (${run.label}), ${run.objects.toLocaleString('en')} pods cached`;
  const target = run.target ? `≤ ${RSS_TARGET_MB} MB` : '';
  progress(name);
  const hub = await HubProcess.spawn({
    command: deployedHubCommand(run.command, run.nodeFlags, run.environment),
    servers: [],
    dataDir: run.dataDir,
    logFile: run.logFile,
    nodeName: run.nodeName,
    extraArgs: ['--upstream-kubeconfig', run.kubeconfig],
  });
  try {
    await hub.waitReady();
    await resolverGone(hub.pid);
    const log = existsSync(run.logFile) ? readFileSync(run.logFile, 'utf8') : '';
    if (log.includes('resolving the upstream kubeconfig failed')) {
      throw new Error(`resolving the kubeconfig failed: ${log.trim().split('\n').at(-1) ?? ''}`);
    }
    await serveNodeList(hub.url);
    await renewLeaseOffline(hub.url, run.nodeName);
    const m = readSmapsRollup(hub.pid);
    const peak = hub.memory().peakBytes;
    return {
      measurement: name,
      measured: `${formatMb(m.rssBytes)} RSS (Pss ${formatMb(m.pssBytes)}, private ${formatMb(m.privateBytes)}; peak ${formatMb(peak)}) after serving kubelet's node LIST and a protobuf Lease renewal`,
      target,
      verdict: run.target ? verdict(m.rssBytes <= RSS_TARGET_MB * 1024 * 1024) : '',
    };
  } finally {
    await hub.stop();
  }
}

/** How the unit's environment is varied to show what each setting buys (--memory-only runs). */
export const DEPLOYED_VARIANTS: ReadonlyArray<{
  label: string;
  change: Record<string, string | undefined>;
}> = [
  { label: 'without GLIBC_TUNABLES', change: { GLIBC_TUNABLES: undefined } },
  { label: 'without MALLOC_ARENA_MAX', change: { MALLOC_ARENA_MAX: undefined } },
  { label: 'without NODE_OPTIONS', change: { NODE_OPTIONS: undefined } },
];

/** The unit's node flags varied (--memory-only runs): what one flag is worth, or what more would save. */
export const DEPLOYED_FLAG_VARIANTS: ReadonlyArray<{
  label: string;
  nodeFlags: (unitFlags: readonly string[]) => string[];
}> = [
  {
    label: 'without --no-maglev (V8 mid-tier optimizing compiler on)',
    nodeFlags: (unitFlags) => unitFlags.filter((f) => f !== '--no-maglev'),
  },
  {
    label: '+ --no-opt (interpreter and baseline compiler only)',
    nodeFlags: (unitFlags) => [...unitFlags, '--no-opt'],
  },
];

/**
 * kubelet's protobuf Lease renewal, answered offline: it loads the hub's
 * Lease decoder, as every offline kubelet does within seconds. The store of
 * the memory rows holds pods only, so the answer is a 404 from the cache.
 */
async function renewLeaseOffline(hubUrl: string, nodeName: string): Promise<void> {
  const body = leaseProtobufBody({
    metadata: { name: nodeName, namespace: 'kube-node-lease', resourceVersion: '1' },
    spec: {
      holderIdentity: nodeName,
      leaseDurationSeconds: 40,
      renewTime: new Date().toISOString(),
    },
  });
  const answer = await call(
    `${hubUrl}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${nodeName}`,
    {
      method: 'PUT',
      headers: { ...KUBELET, 'Content-Type': 'application/vnd.kubernetes.protobuf' },
      body,
    },
  );
  if (answer.headers['x-edgebox-source'] !== 'cache' || ![200, 404].includes(answer.status)) {
    throw new Error(`offline Lease renewal: HTTP ${answer.status} ${answer.body.slice(0, 200)}`);
  }
}

/** kubelet's node LIST, 20 times from the cache: the steady state every memory row is read in. */
export async function serveNodeList(hubUrl: string): Promise<void> {
  const served = await runLoad({
    url: `${hubUrl}${NODE_LIST_PATH}`,
    headers: KUBELET,
    mode: 'latency',
    warmup: 0,
    requests: 20,
    expectSource: 'cache',
  });
  if (served.errors > 0) throw new Error(`node LIST failed: ${served.firstError ?? '?'}`);
}
