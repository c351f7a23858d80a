import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import Table from 'cli-table3';
import { buildGuestImage, type GuestImage } from '../runtime/image/build.ts';
import { qemuArgs, QEMU_BINARY } from '../runtime/hypervisor/qemu.ts';
import { hostTscKhz } from '../runtime/hypervisor/tsc.ts';
import { ProcessTracker } from '../runtime/process/tracker.ts';
import {
  AGENT_PORT_NAME,
  GUEST_RUNTIME_DIR,
  PLAIN_BOOT_ARG,
  SHARE_TAG,
} from '../runtime/protocol/guest-layout.ts';
import { DEFAULT_GUEST_ID_MAP } from '../runtime/sharing/id-map.ts';
import { SandboxShare } from '../runtime/sharing/share.ts';
import { startVirtiofsd } from '../runtime/sharing/virtiofsd.ts';
import { Sandbox } from '../runtime/sandbox/sandbox.ts';
import { makeBusyboxRootfs } from '../runtime/test-support/busybox-rootfs.ts';
import { childPids } from '../runtime/test-support/cli-sandbox.ts';
import { buildCompiledCli, sourceCliCommand } from './hub/compiled-hub.ts';

/**
 * `npm run bench -- sandbox [--runs=N] [--memory-only]`: start-up of
 * `sandbox run -- true` by phase, next to a plain QEMU boot of the same
 * kernel, initramfs and share that runs the guest Node up to the agent loading
 * and powers off; the runtime's own share of the time; host memory per sandbox
 * outside QEMU (the per-pod process from the sources and compiled, its
 * virtiofsd, one more sandbox in a running process); and the guest agent's
 * memory. `--memory-only` skips the start-up runs.
 */

interface RunPhases {
  setup: number;
  virtiofsd: number;
  vmm: number;
  kernelToInit: number;
  initToAgent: number;
  containerStarted: number;
  containerExited: number;
  teardown: number;
  total: number;
  agentRss: number;
  agentAnon: number;
  runtimeCpu: number;
  helpersCpu: number;
}

const runRoot = join(tmpdir(), 'edgebox-bench-run');
/** Linux reports process times in clock ticks of 1/100 s (USER_HZ) on x86 and arm. */
const TICK_MS = 10;

/**
 * CPU time of this process's children that have been reaped (QEMU,
 * virtiofsd, mount helpers): wall time on a shared, busy host varies by
 * seconds from run to run, CPU time hardly does.
 */
async function reapedChildrenCpuMs(): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of /proc/<pid>/stat (cutime, cstime); this list starts at field 3.
  return (Number(fields[13]) + Number(fields[14])) * TICK_MS;
}

async function sandboxRun(image: GuestImage, rootfs: string, index: number): Promise<RunPhases> {
  const cpuBefore = process.cpuUsage();
  const helpersBefore = await reapedChildrenCpuMs();
  const begin = performance.now();
  const sandbox = await Sandbox.create({
    id: `bench-${process.pid}-${index}`,
    accel: 'tcg',
    image,
    runRoot,
  });
  const t = sandbox.timings;
  await sandbox.createContainer({ id: 'main', rootfs, args: ['true'] });
  await sandbox.startContainer('main');
  const started = performance.now();
  await sandbox.wait('main');
  const exited = performance.now();
  await sandbox.stop();
  const end = performance.now();
  const cpu = process.cpuUsage(cpuBefore);
  const helpersCpu = (await reapedChildrenCpuMs()) - helpersBefore;
  const kernelToInit = t.guestInitSeconds * 1000;
  return {
    setup: t.virtiofsdSpawned - begin,
    virtiofsd: t.virtiofsdReady - t.virtiofsdSpawned,
    vmm: t.vmmReady - t.vmmSpawned,
    kernelToInit,
    initToAgent: t.agentReady - t.vmmReady - kernelToInit,
    containerStarted: started - t.agentReady,
    containerExited: exited - started,
    teardown: end - exited,
    total: end - begin,
    agentRss: sandbox.agent.agentRssBytes,
    agentAnon: sandbox.agent.agentAnonBytes,
    runtimeCpu: (cpu.user + cpu.system) / 1000,
    helpersCpu,
  };
}

/** The same VM started by hand: share, virtiofsd, qemu; the guest loads the agent and powers off. */
async function plainBoot(
  image: GuestImage,
  index: number,
): Promise<{ total: number; kernelToAgent: number; cpu: number }> {
  const dir = join(runRoot, `plain-${process.pid}-${index}`);
  await mkdir(dir, { recursive: true });
  const processes = new ProcessTracker(dir);
  const share = new SandboxShare(join(dir, 'share'));
  const begin = performance.now();
  const cpuBefore = process.cpuUsage();
  const helpersBefore = await reapedChildrenCpuMs();
  try {
    await share.prepare();
    await share.bind(image.runtimePath, GUEST_RUNTIME_DIR, true);
    const fs = await startVirtiofsd(processes, {
      sourceDir: share.dir,
      workDir: dir,
      idMap: DEFAULT_GUEST_ID_MAP,
    });
    const args = qemuArgs(
      {
        id: `plain-${index}`,
        runDir: dir,
        kernelPath: image.kernelPath,
        initramfsPath: image.initramfsPath,
        kernelArgs: ['console=ttyS0', 'rdinit=/init', 'panic=-1', 'quiet', PLAIN_BOOT_ARG],
        memoryMiB: 512,
        cpus: 1,
        accel: 'tcg',
        fileSystems: [{ tag: SHARE_TAG, socketPath: fs.socketPath }],
        agentSocketPath: join(dir, 'agent.sock'),
        agentPortName: AGENT_PORT_NAME,
        isolatedNetwork: false,
        devices: [],
        consoleLogPath: join(dir, 'console.log'),
      },
      await hostTscKhz(),
    );
    const qemu = await processes.spawn('qemu', QEMU_BINARY, args);
    // The console is QEMU's stdout (see qemuArgs); this guest prints a few lines and powers off.
    let console = '';
    qemu.child.stdout?.on('data', (chunk: Buffer) => (console += chunk.toString()));
    const consoleEnded = new Promise((resolve) => qemu.child.stdout?.once('close', resolve));
    await qemu.exited;
    await consoleEnded;
    const total = performance.now() - begin;
    const loaded = /edgebox-agent: loaded at ([0-9.]+) s/.exec(console)?.[1];
    if (!loaded)
      throw new Error(`plain boot ${index} did not load the agent:\n${console.slice(-2000)}`);
    await processes.stopAll();
    await share.teardown();
    const own = process.cpuUsage(cpuBefore);
    const cpu = (await reapedChildrenCpuMs()) - helpersBefore + (own.user + own.system) / 1000;
    return { total, kernelToAgent: Number(loaded) * 1000, cpu };
  } finally {
    await processes.stopAll();
    await share.teardown();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * How a deployment starts the per-pod runtime (bench/sandbox/FIGURES.md, the deployment paragraph):
 * a young generation of 1 MiB semi-spaces instead of up to 16 MiB, and two
 * malloc arenas instead of one per thread that ever allocated.
 */
const RUNTIME_ENV = { NODE_OPTIONS: '--max-semi-space-size=1', MALLOC_ARENA_MAX: '2' };
const RUNTIME_ENV_TEXT = Object.entries(RUNTIME_ENV)
  .map(([k, v]) => `${k}=${v}`)
  .join(' ');

interface ProcessMemory {
  rss: number;
  /** Proportional set size: each shared page divided among the processes that map it. */
  pss: number;
  /** Unique set size (Private_Clean + Private_Dirty): what ending the process would free. */
  uss: number;
}

async function processMemory(pid: number): Promise<ProcessMemory> {
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  const kb = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0) * 1024;
  return {
    rss: kb('Rss'),
    pss: kb('Pss'),
    uss: kb('Private_Clean') + kb('Private_Dirty'),
  };
}

/** RSS less RssShmem: virtiofsd maps the guest's RAM (QEMU's memfd), which is QEMU's memory. */
async function ownMemory(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = (field: string): number =>
    Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return kb('VmRSS') - kb('RssShmem');
}

/** A `sandbox run` whose container prints "up" and sleeps, started by `command`. */
interface Pod {
  child: ChildProcess;
  exited: Promise<number | null>;
}

async function startPod(
  command: string[],
  env: Record<string, string>,
  rootfs: string,
): Promise<Pod> {
  const [executable = process.execPath, ...args] = command;
  const child = spawn(
    executable,
    [...args, 'sandbox', 'run', '--rootfs', rootfs, '--accel', 'tcg'].concat([
      '--',
      'sh',
      '-c',
      'echo up; exec sleep 1000',
    ]),
    {
      env: { ...process.env, EDGEBOX_RUN_DIR: runRoot, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('up')) resolve();
    });
    void exited.then((code) =>
      reject(
        new Error(`${command.join(' ')} sandbox run exited (${code}) before "up":\n${stderr}`),
      ),
    );
  });
  return { child, exited };
}

/**
 * A virtiofsd and the child it forks (the C one does): their own memory (RSS
 * less the mapped guest RAM) and their private memory (USS), which leaves out
 * the shared libraries every virtiofsd on the host maps.
 */
async function virtiofsdMemory(pid: number): Promise<{ own: number; uss: number }> {
  const total = { own: 0, uss: 0 };
  for (const p of [pid, ...(await childPids(pid))]) {
    total.own += await ownMemory(p);
    total.uss += (await processMemory(p)).uss;
  }
  return total;
}

/** The virtiofsd a `sandbox run` process started. */
async function virtiofsdOf(runtimePid: number): Promise<number> {
  for (const c of await childPids(runtimePid)) {
    const comm = (await readFile(`/proc/${c}/comm`, 'utf8').catch(() => '')).trim();
    if (comm.startsWith('virtiofsd')) return c;
  }
  throw new Error(`sandbox run ${runtimePid} has no virtiofsd child`);
}

/** Ctrl-C, as a person (or the shim's owner) ends a pod; resolves with the exit code. */
function interrupt(pod: Pod): Promise<number | null> {
  pod.child.kill('SIGINT');
  return pod.exited;
}

interface PodMemory {
  runtime: ProcessMemory;
  virtiofsd: { own: number; uss: number };
}

async function podMemory(pod: Pod): Promise<PodMemory> {
  const pid = pod.child.pid ?? 0;
  return {
    runtime: await processMemory(pid),
    virtiofsd: await virtiofsdMemory(await virtiofsdOf(pid)),
  };
}

/**
 * Host memory of the per-pod `sandbox run` process (what a per-pod shim
 * costs) and its virtiofsd while the container runs, QEMU excluded. Each is
 * measured while another pod runs (and this benchmark, a Node process too),
 * as on a host with more than one pod: Node's text is then shared, paid once
 * per host, and the private memory (USS) is what one more pod adds.
 */
async function perPodMemory(
  rootfs: string,
  compiled: string[],
): Promise<{ compiled: PodMemory; sources: PodMemory; exitCode: number | null }> {
  const first = await startPod(compiled, RUNTIME_ENV, rootfs);
  try {
    const second = await startPod(compiled, RUNTIME_ENV, rootfs);
    const compiledMemory = await podMemory(second);
    await interrupt(second);
    const fromSources = await startPod(sourceCliCommand(), {}, rootfs);
    const sourcesMemory = await podMemory(fromSources);
    const exitCode = await interrupt(fromSources);
    return { compiled: compiledMemory, sources: sourcesMemory, exitCode };
  } finally {
    await interrupt(first);
  }
}

/**
 * A full garbage collection, so that memory growth compares what is live
 * rather than what the last collection happened to leave (this process has
 * just run several sandboxes and the compiler).
 */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

/** Resident and live (JS heap + buffers outside it) memory of this process, after a full GC. */
function liveMemory(): { rss: number; live: number } {
  collectGarbage();
  const usage = process.memoryUsage();
  return { rss: usage.rss, live: usage.heapUsed + usage.external };
}

/**
 * What one more sandbox costs a runtime process that already runs one (as a
 * daemon serving several pods would): its growth plus the new virtiofsd.
 */
async function marginalMemory(
  image: GuestImage,
  rootfs: string,
): Promise<{ rss: number; live: number; virtiofsd: number }> {
  const sleeper = async (sandbox: Sandbox): Promise<Sandbox> => {
    await sandbox.createContainer({ id: 'c', rootfs, args: ['sleep', '1000'] });
    await sandbox.startContainer('c');
    return sandbox;
  };
  const create = (name: string): Promise<Sandbox> =>
    Sandbox.create({ id: `bench-${name}-${process.pid}`, accel: 'tcg', image, runRoot });
  const first = await create('m1');
  try {
    await sleeper(first);
    const before = liveMemory();
    const second = await create('m2');
    try {
      await sleeper(second);
      const after = liveMemory();
      return {
        rss: after.rss - before.rss,
        live: after.live - before.live,
        virtiofsd: (await virtiofsdMemory(second.pids.virtiofsd ?? 0)).own,
      };
    } finally {
      await second.stop();
    }
  } finally {
    await first.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

const ms = (v: number): string => `${v.toFixed(0)} ms`;
const mib = (v: number): string => `${(v / 1048576).toFixed(1)} MiB`;

/** Start-up by phase next to a plain boot, and the runtime's share of CPU time. */
async function startupTables(
  image: GuestImage,
  rootfs: string,
  runs: number,
): Promise<{ agentRss: number; agentAnon: number }> {
  const sandboxRuns: RunPhases[] = [];
  const plainRuns: { total: number; kernelToAgent: number; cpu: number }[] = [];
  for (let i = 0; i < runs; i++) {
    plainRuns.push(await plainBoot(image, i));
    sandboxRuns.push(await sandboxRun(image, rootfs, i));
  }
  const m = (key: keyof RunPhases): number => median(sandboxRuns.map((r) => r[key]));
  const plainTotal = median(plainRuns.map((r) => r.total));
  const phases = new Table({
    head: ['phase of `sandbox run -- true` (TCG)', `median of ${runs}`],
  });
  phases.push(
    ['run dir, share, bind mounts', ms(m('setup'))],
    ['virtiofsd ready', ms(m('virtiofsd'))],
    ['VMM exec (QEMU to QMP ready)', ms(m('vmm'))],
    ['kernel to init (guest clock)', ms(m('kernelToInit'))],
    ['init to agent ready', ms(m('initToAgent'))],
    ['container started', ms(m('containerStarted'))],
    ['container exited', ms(m('containerExited'))],
    ['stop and clean up', ms(m('teardown'))],
    ['total', ms(m('total'))],
    ['plain QEMU, same kernel/initramfs/share, to agent loaded and off', ms(plainTotal)],
    [
      '  of which guest kernel start to agent loaded',
      ms(median(plainRuns.map((r) => r.kernelToAgent))),
    ],
  );
  process.stdout.write(`${phases.toString()}\n`);

  const overhead = m('total') - plainTotal;
  const sandboxCpu = median(sandboxRuns.map((r) => r.runtimeCpu + r.helpersCpu));
  const plainCpu = median(plainRuns.map((r) => r.cpu));
  const cpu = new Table({ head: ['measure', 'value', 'target'] });
  cpu.push(
    [
      'CPU time, all processes: sandbox run -- true / plain boot',
      `${ms(sandboxCpu)} / ${ms(plainCpu)}`,
      '',
    ],
    [
      'runtime share of CPU time: (sandbox − plain) / sandbox',
      `${((100 * (sandboxCpu - plainCpu)) / sandboxCpu).toFixed(1)} %`,
      '≤ 10 %',
    ],
    [
      'of which the runtime process itself',
      `${ms(m('runtimeCpu'))} (${((100 * m('runtimeCpu')) / sandboxCpu).toFixed(1)} %)`,
      '',
    ],
    [
      'wall time: sandbox − plain (noisy on a shared host)',
      `${ms(overhead)} (${((100 * overhead) / m('total')).toFixed(1)} %)`,
      '',
    ],
  );
  process.stdout.write(`${cpu.toString()}\n`);
  return { agentRss: m('agentRss'), agentAnon: m('agentAnon') };
}

const rssPssUss = (p: ProcessMemory): string => `${mib(p.rss)} / ${mib(p.pss)} / ${mib(p.uss)}`;

/** Host memory outside QEMU: per-pod process (sources and compiled), virtiofsd, one more sandbox. */
async function memoryTable(
  image: GuestImage,
  rootfs: string,
  agent: { agentRss: number; agentAnon: number } | undefined,
): Promise<void> {
  const buildDir = await mkdtemp(join(tmpdir(), 'edgebox-bench-compiled-'));
  try {
    const compiled = await buildCompiledCli(buildDir, {
      entries: ['runtime/command.ts'],
      // The runtime finds its cached guest image by a hash of the agent's sources.
      sourceDirs: ['runtime/guest', 'runtime/protocol'],
    });
    if (compiled instanceof Error) throw compiled;
    const pods = await perPodMemory(rootfs, compiled);
    const marginal = await marginalMemory(image, rootfs);
    const { runtime, virtiofsd } = pods.compiled;
    const virtiofsdOwn = virtiofsd.own;
    const table = new Table({ head: ['host memory outside QEMU (TCG)', 'value', 'target'] });
    table.push(
      [
        '`sandbox run` process, TypeScript sources (bin/edgebox.js, no flags): RSS / PSS / USS',
        rssPssUss(pods.sources.runtime),
        '',
      ],
      [
        `\`sandbox run\` process, compiled, ${RUNTIME_ENV_TEXT}: RSS / PSS / USS`,
        rssPssUss(runtime),
        '',
      ],
      [
        'its virtiofsd, own (RSS less the mapped guest RAM); private (USS)',
        `${mib(virtiofsdOwn)}; ${mib(virtiofsd.uss)}`,
        '',
      ],
      [
        'host memory a sandbox adds outside QEMU (compiled runtime: private memory (USS) + virtiofsd own)',
        `${mib(runtime.uss + virtiofsdOwn)} (with RSS: ${mib(runtime.rss + virtiofsdOwn)}, ` +
          `PSS: ${mib(runtime.pss + virtiofsdOwn)})`,
        '≤ 40 MiB',
      ],
      [
        'one more sandbox in a running runtime process: RSS growth (live heap + buffers) + its virtiofsd (own)',
        `${mib(marginal.rss)} (${mib(marginal.live)}) + ${mib(marginal.virtiofsd)}`,
        '≤ 40 MiB',
      ],
      ...(agent
        ? [
            [
              'guest agent memory at ready: RSS (anonymous, i.e. not the mapped Node binary)',
              `${mib(agent.agentRss)} (${mib(agent.agentAnon)})`,
              '',
            ],
          ]
        : []),
      ['Ctrl-C of `sandbox run` exit code', String(pods.exitCode), '130'],
    );
    process.stdout.write(`${table.toString()}\n`);
  } finally {
    await rm(buildDir, { recursive: true, force: true });
  }
}

export async function runBenchmark(args: string[]): Promise<void> {
  // The runtime share is the difference of two ~10 s emulated boots whose
  // plain half alone varies by a second here: 3-run medians gave 11-18 %,
  // 5 runs 5 %. Five pairs (interleaved) keep the figure from being noise.
  const runs = Number(args.find((a) => a.startsWith('--runs='))?.slice(7) ?? 5);
  const image = await buildGuestImage();
  const rootfs = await makeBusyboxRootfs();
  await mkdir(runRoot, { recursive: true });
  try {
    const agent = args.includes('--memory-only')
      ? undefined
      : await startupTables(image, rootfs, runs);
    await memoryTable(image, rootfs, agent);
  } finally {
    await rm(rootfs, { recursive: true, force: true });
  }
}
