// The deployed hub's memory, one variant at a time, without the whole memory
// bench: for attributing its RSS and trying a setting before/after.
//
//   npx node bench/hub/deployed-probe.ts prepare DIR
//       seeds the API double with 10,000 pods, caches them through a hub into
//       DIR/pods, builds the unit's script into DIR/install and the tsc build
//       into DIR/compiled (as the bench does), and writes a kubeconfig naming
//       the (then stopped) double.
//   npx node bench/hub/deployed-probe.ts measure DIR [--runs N] [--env K=V]... [--unset K]... [--tsc]
//       [--node-flags "..."] [--command "node /path/edgebox.js"] [--smaps] [--hold] [--more-lists N]
//       runs the hub as deploy/hub/edgebox-hub.service does (its script, or the
//       tsc build with --tsc, or --command; its Environment= and node flags,
//       plus the changes given; --no-unit-flags drops the unit's node flags),
//       serves kubelet's node LIST 20
//       times and prints RSS / Pss / private; --smaps adds the resident memory
//       by mapping, --hold keeps the last hub running until Ctrl-C (its pid is
//       printed) for heap snapshots or /proc reading; --more-lists N serves N more
//       node LISTs and reads the memory again (what a relisting kubelet leaves).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FakeApiServer } from '../../test/apiserver/server.ts';
import { KUBELET, seedCluster } from './bench-cluster.ts';
import { buildCompiledHub, sourceHubCommand } from './compiled-hub.ts';
import { HubProcess } from './hub-process.ts';
import { buildUnitScript, readHubUnit, readSmapsRollup, serveNodeList } from './memory.ts';
import { runLoad } from './load-run.ts';
import { fillThroughHub, NODE_LIST_PATH } from './offline-lists.ts';
import { nodeName } from './pod-fixture.ts';

interface ProbeState {
  /** The unit's script as `npm run build` writes it (buildUnitScript). */
  deployed: string[];
  /** The tsc build (EDGEBOX_COMPILED=1 bin/edgebox.js), for comparison with --tsc. */
  compiled: string[];
  kubeconfig: string;
  podStore: string;
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: 'string', default: '1' },
    env: { type: 'string', multiple: true, default: [] },
    unset: { type: 'string', multiple: true, default: [] },
    'node-flags': { type: 'string', default: '' },
    'no-unit-flags': { type: 'boolean', default: false },
    command: { type: 'string' },
    tsc: { type: 'boolean', default: false },
    smaps: { type: 'boolean', default: false },
    hold: { type: 'boolean', default: false },
    'more-lists': { type: 'string', default: '0' },
  },
});
const [action, dirArg] = positionals;
if ((action !== 'prepare' && action !== 'measure') || dirArg === undefined) {
  process.stderr.write('usage: deployed-probe.ts prepare|measure DIR [options] (see the header)\n');
  process.exit(2);
}
const dir = resolve(dirArg);
const stateFile = join(dir, 'probe.json');

async function prepare(): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const api = new FakeApiServer({});
  await api.start();
  seedCluster(api);
  const podStore = join(dir, 'pods');
  const hub = await HubProcess.spawn({
    command: sourceHubCommand(),
    servers: [api.url],
    dataDir: podStore,
    logFile: join(dir, 'fill.log'),
    nodeName: nodeName(7),
  });
  try {
    await hub.waitReady();
    await hub.waitUpstream('up');
    await fillThroughHub(hub);
  } finally {
    await hub.stop();
  }
  const kubeconfig = api.kubeconfigPath(dir, { auth: 'token' });
  await api.stop();
  await api.close();
  const compiled = await buildCompiledHub(join(dir, 'compiled'));
  if (compiled instanceof Error) throw compiled;
  const deployed = await buildUnitScript(readHubUnit(), join(dir, 'install'));
  if (deployed instanceof Error) throw deployed;
  const state: ProbeState = { deployed, compiled, kubeconfig, podStore };
  writeFileSync(stateFile, JSON.stringify(state, null, 2));
  process.stdout.write(`prepared ${dir}\n`);
}

/** Resident kB by mapping kind, from /proc/PID/smaps. */
function smapsBreakdown(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let kind = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      const [, perms = '', path = ''] = header;
      const name = path === '' ? '[anon]' : path.replace(/^.*\/node_modules\//, 'node_modules/');
      kind = `${perms} ${name}`;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null) out.set(kind, (out.get(kind) ?? 0) + Number(rss[1]));
  }
  return out;
}

async function measureOnce(state: ProbeState, last: boolean): Promise<string> {
  const unit = readHubUnit();
  const environment: Record<string, string | undefined> = { ...unit.environment };
  for (const k of values.unset) environment[k] = undefined;
  for (const kv of values.env) {
    const eq = kv.indexOf('=');
    environment[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const entries = Object.entries(environment);
  const env = [
    ...entries.flatMap(([k, v]) => (v === undefined ? ['-u', k] : [])),
    ...entries.flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`])),
  ];
  const [program, ...rest] =
    values.command?.split(' ') ?? (values.tsc ? state.compiled : state.deployed);
  if (program === undefined) throw new Error('no command');
  const flags = [
    ...(values['no-unit-flags'] ? [] : unit.nodeFlags),
    ...values['node-flags'].split(' ').filter((f) => f !== ''),
  ];
  const hub = await HubProcess.spawn({
    command: ['/usr/bin/env', ...env, program, ...flags, ...rest],
    servers: [],
    dataDir: state.podStore,
    logFile: join(dir, 'probe-hub.log'),
    nodeName: nodeName(7),
    extraArgs: ['--upstream-kubeconfig', state.kubeconfig],
  });
  try {
    await hub.waitReady();
    // The resolver child has exited once the hub answers from its cache with no children left.
    for (;;) {
      const children = readFileSync(`/proc/${hub.pid}/task/${hub.pid}/children`, 'utf8').trim();
      if (children === '') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await serveNodeList(hub.url);
    const m = readSmapsRollup(hub.pid);
    const threads = readFileSync(`/proc/${hub.pid}/status`, 'utf8').match(/^Threads:\s+(\d+)/m);
    const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
    let text = `RSS ${mb(m.rssBytes)} MB, Pss ${mb(m.pssBytes)}, private ${mb(m.privateBytes)}, threads ${threads?.[1] ?? '?'}`;
    const more = Number(values['more-lists']);
    if (more > 0) {
      const again = await runLoad({
        url: `${hub.url}${NODE_LIST_PATH}`,
        headers: KUBELET,
        mode: 'latency',
        warmup: 0,
        requests: more,
        expectSource: 'cache',
      });
      if (again.errors > 0) throw new Error(`node LIST failed: ${again.firstError ?? '?'}`);
      const after = readSmapsRollup(hub.pid);
      text += `; after ${more} more LISTs: RSS ${mb(after.rssBytes)} MB, private ${mb(after.privateBytes)}`;
    }
    if (values.smaps) {
      const rows = [...smapsBreakdown(hub.pid).entries()]
        .filter(([, kb]) => kb >= 256)
        .sort((a, b) => b[1] - a[1]);
      text += `\n${rows.map(([k, kb]) => `  ${(kb / 1024).toFixed(1).padStart(6)} MB  ${k}`).join('\n')}`;
    }
    if (last && values.hold) {
      process.stdout.write(`${text}\nholding hub pid ${hub.pid} (${hub.url}); Ctrl-C ends it\n`);
      await new Promise<void>((r) => process.once('SIGINT', () => r()));
    }
    return text;
  } finally {
    await hub.stop();
  }
}

if (action === 'prepare') {
  await prepare();
} else {
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as ProbeState;
  const runs = Number(values.runs);
  for (let i = 0; i < runs; i++) {
    process.stdout.write(`${await measureOnce(state, i === runs - 1)}\n`);
  }
}
