import { existsSync } from 'node:fs';
import { readFile, readdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import Table from 'cli-table3';
import { buildGuestImage } from '../runtime/image/build.ts';
import { sandboxIdFor } from '../runtime/shim/config.ts';
import { makeBusyboxRootfs } from '../runtime/test-support/busybox-rootfs.ts';
import { startContainerd } from '../runtime/test-support/containerd.ts';
import { CriClient } from '../runtime/test-support/cri/cri-client.ts';
import { buildOciArchive } from '../runtime/test-support/oci-image.ts';

/**
 * `npm run bench -- shim [--runs=N]`: pod start through CRI (RunPodSandbox →
 * CreateContainer → StartContainer returning, the container running) with
 * handler `edgebox` against runc on the same private containerd in the same
 * run, by phase; and, while an edgebox pod runs, host memory outside the
 * guest: the shim's and virtiofsd's private memory (USS) and QEMU's own
 * memory (its anonymous RSS; guest RAM is a shared memfd and not counted).
 * The shims run compiled (`npm run build` first), with the deployment's flags.
 */
const IMAGE = 'edgebox.test/busybox:1';
const COMPILED_SHIM = fileURLToPath(new URL('../dist/runtime/shim/main.js', import.meta.url));
const MiB = 1024 * 1024;

interface PodTimes {
  sandbox: number;
  create: number;
  start: number;
  total: number;
}

interface Memory {
  shimUss: number;
  virtiofsdUss: number;
  qemuAnon: number;
  qemuRss: number;
}

async function processesNaming(text: string): Promise<{ pid: number; args: string[] }[]> {
  const found = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (args.some((a) => a.includes(text))) found.push({ pid: Number(pid), args });
  }
  return found;
}

async function uss(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  let kib = 0;
  for (const m of text.matchAll(/^Private_(?:Clean|Dirty):\s+(\d+) kB/gm)) kib += Number(m[1]);
  return kib * 1024;
}

async function statusField(pid: number, field: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
}

async function podMemory(runRoot: string, podId: string): Promise<Memory> {
  const runDir = join(runRoot, sandboxIdFor(podId));
  const helpers = await processesNaming(runDir);
  const shim = (await processesNaming(podId)).find(
    (p) => p.args.includes('serve') && p.args.some((a) => a.endsWith('containerd-shim-edgebox-v2')),
  );
  if (!shim) throw new Error(`no shim for pod ${podId}`);
  const memory: Memory = { shimUss: await uss(shim.pid), virtiofsdUss: 0, qemuAnon: 0, qemuRss: 0 };
  for (const p of helpers) {
    if (p.args[0]?.includes('virtiofsd')) memory.virtiofsdUss += await uss(p.pid);
    if (p.args[0]?.startsWith('qemu-system')) {
      memory.qemuAnon += await statusField(p.pid, 'RssAnon');
      memory.qemuRss += await statusField(p.pid, 'VmRSS');
    }
  }
  return memory;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

export async function runBenchmark(args: string[]): Promise<void> {
  const runs = Number(args.find((a) => a.startsWith('--runs='))?.slice(7) ?? 3);
  const image = await buildGuestImage();
  const rootfs = await makeBusyboxRootfs();
  const archive = await buildOciArchive(rootfs, [
    { name: IMAGE, cmd: ['sh'] },
    { name: 'edgebox.test/pause:1', cmd: ['sleep', '2147483647'] },
  ]);
  await rm(rootfs, { recursive: true, force: true });
  if (!existsSync(COMPILED_SHIM))
    throw new Error(
      `${COMPILED_SHIM} is missing: run \`npm run build\` first (nodes run the compiled shim)`,
    );
  const containerd = await startContainerd({
    guestImageDir: image.dir,
    pauseImage: 'edgebox.test/pause:1',
    // As deploy/runtime/containerd-edgebox.conf runs it.
    env: { EDGEBOX_COMPILED: '1', NODE_OPTIONS: '--max-semi-space-size=1', MALLOC_ARENA_MAX: '2' },
  });
  const cri = new CriClient(containerd.address);
  const times: Record<string, PodTimes[]> = { runc: [], edgebox: [] };
  const memories: Memory[] = [];
  try {
    await containerd.ctr(['-n', 'k8s.io', 'image', 'import', archive]);
    for (let run = 0; run < runs; run++) {
      // Interleaved, so both see the same machine load.
      for (const handler of ['runc', 'edgebox']) {
        const config = {
          metadata: {
            name: `b${run}`,
            uid: `bench-${handler}-${run}`,
            namespace: 'bench',
            attempt: 0,
          },
          hostname: `b${run}`,
          log_directory: join(containerd.dir, 'pods', `${handler}-${run}`),
          linux: {},
        };
        const t0 = performance.now();
        const { pod_sandbox_id: podId } = await cri.call<{ pod_sandbox_id: string }>(
          'RunPodSandbox',
          { config, runtime_handler: handler },
        );
        const t1 = performance.now();
        const { container_id: id } = await cri.call<{ container_id: string }>('CreateContainer', {
          pod_sandbox_id: podId,
          config: {
            metadata: { name: 'c', attempt: 0 },
            image: { image: IMAGE },
            command: ['sleep', '600'],
            log_path: 'c.log',
          },
          sandbox_config: config,
        });
        const t2 = performance.now();
        await cri.call('StartContainer', { container_id: id });
        const t3 = performance.now();
        times[handler]!.push({ sandbox: t1 - t0, create: t2 - t1, start: t3 - t2, total: t3 - t0 });
        if (handler === 'edgebox') memories.push(await podMemory(containerd.runRoot, podId));
        await cri.call('StopPodSandbox', { pod_sandbox_id: podId });
        await cri.call('RemovePodSandbox', { pod_sandbox_id: podId });
      }
    }
  } finally {
    cri.close();
    await containerd.stop();
    await rm(archive, { force: true });
  }
  const table = new Table({
    head: ['pod start (median ms)', 'RunPodSandbox', 'CreateContainer', 'StartContainer', 'total'],
  });
  for (const handler of ['runc', 'edgebox']) {
    const t = times[handler]!;
    table.push([
      `${handler} (${t.length} runs)`,
      ...(['sandbox', 'create', 'start', 'total'] as const).map((k) =>
        median(t.map((x) => x[k])).toFixed(0),
      ),
    ]);
  }
  const ratio =
    median(times.edgebox!.map((t) => t.total)) / median(times.runc!.map((t) => t.total));
  table.push(['edgebox / runc', '', '', '', `${ratio.toFixed(1)}x`]);
  process.stdout.write(`${table.toString()}\n`);
  const mem = new Table({ head: ['host memory per edgebox pod (median MiB)', 'value'] });
  const m = (k: keyof Memory): string => (median(memories.map((x) => x[k])) / MiB).toFixed(1);
  mem.push(
    ['shim USS', m('shimUss')],
    ['virtiofsd USS', m('virtiofsdUss')],
    [
      'shim + virtiofsd (target <= 40; Kata podFixed 130-320)',
      (median(memories.map((x) => x.shimUss + x.virtiofsdUss)) / MiB).toFixed(1),
    ],
    ['QEMU own (RssAnon; guest RAM is a shared memfd)', m('qemuAnon')],
    ['QEMU RSS (includes guest pages touched)', m('qemuRss')],
  );
  process.stdout.write(`${mem.toString()}\n`);
}
