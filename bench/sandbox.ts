import { mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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
import { SandboxShare } from '../runtime/sharing/share.ts';
import { startVirtiofsd } from '../runtime/sharing/virtiofsd.ts';
import { Sandbox } from '../runtime/sandbox/sandbox.ts';
import { makeBusyboxRootfs } from '../runtime/test-support/busybox-rootfs.ts';
import { childPids, startSleepingSandbox } from '../runtime/test-support/cli-sandbox.ts';

/**
 * `npm run bench -- sandbox [--runs=N]`: start-up of `sandbox run -- true`
 * by phase, next to a plain QEMU boot of the same kernel, initramfs and share
 * that runs the guest Node up to the agent loading and powers off; the
 * runtime's own share of the time; host memory per sandbox outside QEMU; and
 * the guest agent's memory.
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
    await startVirtiofsd(processes, share.dir, join(dir, 'virtiofsd.sock'));
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
        fileSystems: [{ tag: SHARE_TAG, socketPath: join(dir, 'virtiofsd.sock') }],
        agentSocketPath: join(dir, 'agent.sock'),
        agentPortName: AGENT_PORT_NAME,
        isolatedNetwork: true,
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

interface Memory {
  rss: number;
  /** RSS less shared memory (guest RAM that virtiofsd maps from QEMU's memfd). */
  own: number;
}

async function memoryOf(pid: number): Promise<Memory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = (field: string): number =>
    Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), own: kb('VmRSS') - kb('RssShmem') };
}

function add(a: Memory, b: Memory): Memory {
  return { rss: a.rss + b.rss, own: a.own + b.own };
}

/**
 * Host memory of one `edgebox sandbox run` (the per-pod process, like a shim)
 * and its virtiofsd while the container runs, QEMU excluded; then Ctrl-C.
 */
async function cliMemory(
  rootfs: string,
): Promise<{ runtime: Memory; virtiofsd: Memory; exitCode: number | null }> {
  const { child, exited } = await startSleepingSandbox(rootfs, runRoot, 'inherit');
  const pid = child.pid ?? 0;
  const runtime = await memoryOf(pid);
  let virtiofsd: Memory = { rss: 0, own: 0 };
  for (const c of await childPids(pid)) {
    const comm = (await readFile(`/proc/${c}/comm`, 'utf8').catch(() => '')).trim();
    if (comm.startsWith('virtiofsd')) {
      virtiofsd = add(virtiofsd, await memoryOf(c));
      for (const grandchild of await childPids(c))
        virtiofsd = add(virtiofsd, await memoryOf(grandchild));
    }
  }
  child.kill('SIGINT');
  return { runtime, virtiofsd, exitCode: await exited };
}

/**
 * What one more sandbox costs a runtime process that already runs one (as a
 * daemon serving several pods would): its RSS growth plus the new virtiofsd.
 */
async function marginalMemory(
  image: GuestImage,
  rootfs: string,
): Promise<{ runtime: number; virtiofsd: number }> {
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
    const before = process.memoryUsage().rss;
    const second = await create('m2');
    try {
      await sleeper(second);
      const runtime = process.memoryUsage().rss - before;
      const virtiofsd = await memoryOf(second.pids.virtiofsd ?? 0);
      return { runtime, virtiofsd: virtiofsd.own };
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

export async function runBenchmark(args: string[]): Promise<void> {
  const runs = Number(args.find((a) => a.startsWith('--runs='))?.slice(7) ?? 3);
  const image = await buildGuestImage();
  const rootfs = await makeBusyboxRootfs();
  await mkdir(runRoot, { recursive: true });
  try {
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

    const memory = await cliMemory(rootfs);
    const marginal = await marginalMemory(image, rootfs);
    const overhead = m('total') - plainTotal;
    const sandboxCpu = median(sandboxRuns.map((r) => r.runtimeCpu + r.helpersCpu));
    const plainCpu = median(plainRuns.map((r) => r.cpu));
    const summary = new Table({ head: ['measure', 'value', 'target'] });
    summary.push(
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
      ['host memory per sandbox outside QEMU: runtime process (RSS)', mib(memory.runtime.rss), ''],
      [
        'host memory per sandbox outside QEMU: virtiofsd (RSS; own, less mapped guest RAM)',
        `${mib(memory.virtiofsd.rss)}; ${mib(memory.virtiofsd.own)}`,
        '',
      ],
      [
        'host memory per `sandbox run` process + its virtiofsd, QEMU excluded (own)',
        mib(memory.runtime.own + memory.virtiofsd.own),
        '≤ 40 MiB',
      ],
      [
        'one more sandbox in a running runtime process: RSS growth + its virtiofsd (own)',
        `${mib(marginal.runtime)} + ${mib(marginal.virtiofsd)}`,
        '≤ 40 MiB',
      ],
      [
        'guest agent memory at ready: RSS (anonymous, i.e. not the mapped Node binary)',
        `${mib(m('agentRss'))} (${mib(m('agentAnon'))})`,
        '',
      ],
      ['Ctrl-C of `sandbox run` exit code', String(memory.exitCode), '130'],
    );
    process.stdout.write(`${summary.toString()}\n`);
  } finally {
    await rm(rootfs, { recursive: true, force: true });
  }
}
