import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { buildGuestImage } from '../image/build.ts';
import { processAlive } from '../process/alive.ts';
import { mountsUnder } from '../sharing/share.ts';
import { makeBusyboxRootfs } from './busybox-rootfs.ts';
import { buildOciArchive } from './oci-image.ts';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { socketAnswers } from '../shim/launch.ts';
import { runCommand, type CommandResult } from '../process/run-command.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SHIM_BIN = join(repoRoot, 'bin', 'containerd-shim-edgebox-v2.js');
export const RUNTIME_TYPE = 'io.containerd.edgebox.v2';

/** What the test CNI network gives every pod besides its address (gateway 10.88.77.1). */
export const TEST_POD_MTU = 1450;
export const TEST_POD_ROUTE = '10.99.0.0/16';
export const TEST_POD_GATEWAY = '10.88.77.1';

export interface PrivateContainerd {
  dir: string;
  address: string;
  /** Environment the shims see (containerd's own). */
  runRoot: string;
  ctr(args: string[], options?: { allowFail?: boolean }): Promise<CommandResult & { code: number }>;
  stop(): Promise<void>;
}

/**
 * A containerd of the test's own: private config, root, state, sockets and
 * CNI configuration; never the machine's. Its PATH starts with a directory
 * holding containerd-shim-edgebox-v2 and the Node that runs it. Without a
 * guest image and a pause image it still runs runc containers (`ctr run`
 * of the ECM image, test/package).
 */
export async function startContainerd(options: {
  guestImageDir?: string;
  pauseImage?: string;
  /** More environment for containerd and so for the shims (the benchmark's compiled build). */
  env?: Record<string, string>;
}): Promise<PrivateContainerd> {
  // As udev's default rule leaves it: pod-network QEMUs open it unprivileged (hosts without udev have 0600).
  await chmod('/dev/net/tun', 0o666);
  const dir = await mkdtemp(join(tmpdir(), 'edgebox-ctrd-'));
  // The run root is below it: virtiofsd (as the guest's mapped ids) and QEMU (unprivileged) pass through.
  await chmod(dir, 0o711);
  const bin = join(dir, 'bin');
  const runRoot = join(dir, 'run');
  const cniConf = join(dir, 'cni');
  await mkdir(bin);
  await mkdir(cniConf);
  await symlink(SHIM_BIN, join(bin, 'containerd-shim-edgebox-v2'));
  const address = join(dir, 'containerd.sock');
  await writeFile(
    join(cniConf, '10-edgebox-test.conflist'),
    JSON.stringify({
      cniVersion: '0.4.0',
      name: 'edgebox-test',
      plugins: [
        {
          type: 'bridge',
          bridge: 'ebtest0',
          isGateway: true,
          ipMasq: false,
          // Not the default MTU, and a route besides the default one: the guest has to take both.
          mtu: TEST_POD_MTU,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: '10.88.77.0/24' }]],
            routes: [{ dst: '0.0.0.0/0' }, { dst: TEST_POD_ROUTE }],
            dataDir: join(dir, 'ipam'),
          },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    }),
  );
  await writeFile(
    join(dir, 'config.toml'),
    `version = 2
root = "${dir}/root"
state = "${dir}/state"
[grpc]
  address = "${address}"
[ttrpc]
  address = "${address}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
${options.pauseImage === undefined ? '' : `  sandbox_image = "${options.pauseImage}"\n`}  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.edgebox]
      runtime_type = "${RUNTIME_TYPE}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${cniConf}"
`,
  );
  const env = {
    ...process.env,
    PATH: `${bin}:${join(repoRoot, 'node_modules', '.bin')}:${process.env.PATH ?? ''}`,
    ...(options.guestImageDir === undefined ? {} : { EDGEBOX_GUEST_IMAGE: options.guestImageDir }),
    EDGEBOX_RUN_DIR: runRoot,
    EDGEBOX_ACCEL: 'tcg',
    EDGEBOX_VM_MEMORY_MIB: '256',
    ...(process.env.EDGEBOX_TEST_CONTAINERD_LOG ? { EDGEBOX_LOG_LEVEL: 'debug' } : {}),
    ...options.env,
  };
  const log: string[] = [];
  const child: ChildProcess = spawn('containerd', ['--config', join(dir, 'config.toml')], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (d: Buffer) => {
    log.push(d.toString());
    if (process.env.EDGEBOX_TEST_CONTAINERD_LOG) process.stderr.write(d);
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  for (let i = 0; !(await socketAnswers(address)); i++) {
    if (child.exitCode !== null || i > 400)
      throw new Error(`containerd did not start: ${log.join('').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const ctr: PrivateContainerd['ctr'] = (args, opts = {}) =>
    new Promise((resolvePromise, reject) => {
      execFile(
        'ctr',
        ['--address', address, ...args],
        { encoding: 'utf8' },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
          if (err && !opts.allowFail)
            reject(new Error(`ctr ${args.join(' ')} failed (${code}): ${stderr.trim()}`));
          else resolvePromise({ stdout, stderr, code });
        },
      );
    });
  return {
    dir,
    address,
    runRoot,
    ctr,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      // Shims outlive containerd (as they must); a test that failed half-way leaves its pods'
      // shims, VMs and virtiofsd running: end every process that names this directory.
      const leftover: number[] = [];
      for (const pid of await readdir('/proc')) {
        if (!/^\d+$/.test(pid)) continue;
        const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (cmdline.includes(`${dir}/`)) leftover.push(Number(pid));
      }
      for (const pid of leftover) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
      for (let i = 0; i < 200 && leftover.some(processAlive); i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      await runCommand('sh', [
        '-c',
        `grep -o " ${dir}[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l`,
      ]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Host processes, mounts and the run directory still naming a pod's run directory. */
export async function podLeftovers(runRoot: string, podId: string): Promise<string[]> {
  const dir = join(runRoot, podId);
  const found: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(dir)) found.push(`process ${pid}: ${cmdline.split('\0')[0]}`);
  }
  found.push(...(await mountsUnder(dir)).map((m) => `mount ${m}`));
  if (existsSync(dir)) found.push(`run directory ${dir}`);
  return found;
}

export const BUSYBOX_IMAGE = 'edgebox.test/busybox:1';
export const PAUSE_IMAGE = 'edgebox.test/pause:1';

/**
 * A private containerd whose namespace `namespace` holds a busybox image and
 * a pause image (both built here from Debian's busybox-static and imported
 * with `ctr image import`), with the guest image built (or found) for the
 * shims.
 */
export async function startContainerdWithImages(
  namespace: string,
  env?: Record<string, string>,
): Promise<PrivateContainerd> {
  const image = await buildGuestImage();
  const rootfs = await makeBusyboxRootfs();
  const archive = await buildOciArchive(rootfs, [
    { name: BUSYBOX_IMAGE, cmd: ['sh'] },
    { name: PAUSE_IMAGE, cmd: ['sleep', '2147483647'] },
  ]).finally(() => rm(rootfs, { recursive: true, force: true }));
  try {
    const containerd = await startContainerd({
      guestImageDir: image.dir,
      pauseImage: PAUSE_IMAGE,
      ...(env ? { env } : {}),
    });
    await containerd
      .ctr(['-n', namespace, 'image', 'import', archive])
      .catch(async (err: unknown) => {
        await containerd.stop();
        throw err;
      });
    return containerd;
  } finally {
    await rm(archive, { force: true });
  }
}
