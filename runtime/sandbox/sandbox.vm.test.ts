import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGuestImage, type GuestImage } from '../image/build.ts';
import { findGuestNode, sharedLibraries } from '../image/guest-node.ts';
import { GUEST_SOCAT_LIBRARY_DIR, GUEST_SOCAT_PATH } from '../protocol/guest-layout.ts';
import { mountsUnder } from '../sharing/share.ts';
import { makeBusyboxRootfs } from '../test-support/busybox-rootfs.ts';
import {
  EDGEBOX_BIN,
  childPids,
  spawnSandboxRun,
  startSleepingSandbox,
} from '../test-support/cli-sandbox.ts';
import type { ContainerSpec } from './config.ts';
import { DEFAULT_CGROUP_PARENT, cgroupHierarchies } from './host-cgroup.ts';
import { Sandbox, type ExitStatus } from './sandbox.ts';

/**
 * Real VMs under QEMU TCG. One sandbox serves most cases (each its own
 * container, as in a pod); the VM-killing case and the CLI get their own.
 */
const VM_TIMEOUT = 240_000;
let image: GuestImage;
let rootfs: string;
let work: string;
let sandbox: Sandbox;
const runRoot = join(tmpdir(), 'edgebox-vm-test-run');

beforeAll(async () => {
  image = await buildGuestImage();
  rootfs = await makeBusyboxRootfs();
  work = await mkdtemp(join(tmpdir(), 'edgebox-vm-test-'));
  // Run roots below it: QEMU and virtiofsd (unprivileged ids) pass through, as through /run.
  await chmod(work, 0o711);
  // A NIC for the network counters; the hostile-guest tests check that pods without one get none.
  sandbox = await Sandbox.create({
    id: `pod-${process.pid}`,
    accel: 'tcg',
    image,
    runRoot,
    network: 'isolated',
  });
}, VM_TIMEOUT);

afterAll(async () => {
  await sandbox?.destroy();
  await rm(rootfs, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

interface Output {
  stdout: string;
  stderr: string;
}

function collectOutput(sb: Sandbox, containerId: string, execId?: string): Output {
  const out: Output = { stdout: '', stderr: '' };
  sb.onEvent((e) => {
    if (e.type === 'output' && e.containerId === containerId && e.execId === execId) {
      out[e.stream] += e.data.toString();
    }
  });
  return out;
}

async function run(spec: ContainerSpec): Promise<Output & { status: ExitStatus }> {
  const out = collectOutput(sandbox, spec.id);
  await sandbox.createContainer(spec);
  await sandbox.startContainer(spec.id);
  const status = await sandbox.wait(spec.id);
  return { ...out, status };
}

function outputContains(sb: Sandbox, containerId: string, text: string): Promise<void> {
  let seen = '';
  return new Promise((resolve) => {
    const off = sb.onEvent((e) => {
      if (e.type !== 'output' || e.containerId !== containerId || e.execId) return;
      seen += e.data.toString();
      if (seen.includes(text)) {
        off();
        resolve();
      }
    });
  });
}

describe('sandbox VM (QEMU TCG)', { timeout: VM_TIMEOUT }, () => {
  it('runs a command from the container rootfs and streams its output', async () => {
    expect(await sandbox.vmStatus()).toBe('running');
    const result = await run({ id: 'cat', rootfs, args: ['cat', '/etc/message'] });
    expect(result.stdout).toBe('hello from the rootfs\n');
    expect(result.status).toEqual({ exitCode: 0 });
  });

  it('streams a large output whole, without tripping the guest message limits', async () => {
    const result = await run({
      id: 'chatty',
      rootfs,
      args: ['sh', '-c', 'yes 0123456789abcde | head -c 2000000; echo oops >&2'],
    });
    expect(result.status).toEqual({ exitCode: 0 });
    expect(result.stdout.length).toBe(2_000_000);
    expect(result.stdout.startsWith('0123456789abcde\n0123456789abcde\n')).toBe(true);
    expect(result.stderr).toBe('oops\n');
  });

  it('shares a volume: what the container writes, the host sees', async () => {
    const volume = join(work, 'rw');
    await mkdtempLike(volume);
    const result = await run({
      id: 'writer',
      rootfs,
      args: ['sh', '-c', 'echo written-in-guest > /vol/out.txt'],
      volumes: [{ hostPath: volume, containerPath: '/vol' }],
    });
    expect(result.status.exitCode).toBe(0);
    expect(await readFile(join(volume, 'out.txt'), 'utf8')).toBe('written-in-guest\n');
  });

  it("runs the vsock relay (socat from the runtime share) on the guest's own libraries", async () => {
    // vsock itself cannot run here (no /dev/vhost-vsock); this proves the
    // guest half that can: the share's socat starts under the guest kernel
    // with only the initramfs's libraries (those Node needs, copied into this
    // rootfs at the same paths) plus its own socat-lib, and was built with vsock.
    const withLibs = join(work, 'rootfs-with-libs');
    await cp(rootfs, withLibs, { recursive: true, verbatimSymlinks: true });
    for (const library of await sharedLibraries(await findGuestNode())) {
      await mkdir(join(withLibs, dirname(library.path)), { recursive: true });
      await copyFile(library.source, join(withLibs, library.path));
    }
    const result = await run({
      id: 'socat',
      rootfs: withLibs,
      env: [`LD_LIBRARY_PATH=${GUEST_SOCAT_LIBRARY_DIR}`],
      args: [GUEST_SOCAT_PATH, '-V'],
      volumes: [
        { hostPath: image.runtimePath, containerPath: dirname(GUEST_SOCAT_PATH), readOnly: true },
      ],
    });
    expect(result.stderr).toBe('');
    expect(result.status.exitCode).toBe(0);
    expect(result.stdout).toMatch(/socat version 1\./);
    expect(result.stdout).toMatch(/#define WITH_VSOCK 1/);
  });

  it('keeps a :ro volume read-only in the guest', async () => {
    const volume = join(work, 'ro');
    await mkdtempLike(volume);
    await writeFile(join(volume, 'keep.txt'), 'original\n');
    const result = await run({
      id: 'ro-writer',
      rootfs,
      args: ['sh', '-c', 'cat /ro/keep.txt; echo changed > /ro/keep.txt; echo new > /ro/new.txt'],
      volumes: [{ hostPath: volume, containerPath: '/ro', readOnly: true }],
    });
    expect(result.stdout).toBe('original\n');
    expect(result.stderr).toMatch(/Read-only file system/);
    expect(result.status.exitCode).not.toBe(0);
    expect(await readFile(join(volume, 'keep.txt'), 'utf8')).toBe('original\n');
    expect(existsSync(join(volume, 'new.txt'))).toBe(false);
  });

  it('holds against a guest root that remounts a :ro volume or makes device nodes', async () => {
    const ro = join(work, 'ro-hostile');
    const rw = join(work, 'rw-hostile');
    await mkdtempLike(ro);
    await mkdtempLike(rw);
    const result = await run({
      id: 'hostile',
      rootfs,
      args: [
        'sh',
        '-c',
        'mount -o remount,rw /ro && echo remounted; echo new > /ro/new.txt; mknod /rw/disk b 8 0',
      ],
      volumes: [
        { hostPath: ro, containerPath: '/ro', readOnly: true },
        { hostPath: rw, containerPath: '/rw' },
      ],
    });
    // The guest's own read-only flag is gone; only the host's stands.
    expect(result.stdout).toBe('remounted\n');
    expect(result.stderr).toMatch(/Read-only file system/);
    expect(existsSync(join(ro, 'new.txt'))).toBe(false);
    expect(result.stderr).toMatch(/mknod.*(Operation not permitted|Permission denied)/);
    expect(existsSync(join(rw, 'disk'))).toBe(false);
  });

  it('runs as the given user, in the given directory, with only the given environment', async () => {
    const result = await run({
      id: 'who',
      rootfs,
      user: { uid: 1000, gid: 1000 },
      cwd: '/tmp',
      env: ['PATH=/bin', 'GREETING=hello there'],
      args: ['sh', '-c', 'id -u; id -G; pwd; echo "$GREETING"; echo "${HOME-unset}"'],
    });
    expect(result.stdout).toBe('1000\n1000\n/tmp\nhello there\nunset\n');
    expect(result.status.exitCode).toBe(0);
  });

  it('propagates exit codes', async () => {
    const result = await run({ id: 'exit7', rootfs, args: ['sh', '-c', 'exit 7'] });
    expect(result.status).toEqual({ exitCode: 7 });
  });

  it('reports a death by signal as 128+N', async () => {
    await sandbox.createContainer({ id: 'sleeper', rootfs, args: ['sleep', '1000'] });
    await sandbox.startContainer('sleeper');
    await sandbox.kill('sleeper', 9);
    expect(await sandbox.wait('sleeper')).toEqual({ exitCode: 137, signal: 9 });
  });

  it('execs into a running container, inside its namespaces', async () => {
    const ready = outputContains(sandbox, 'svc', 'ready');
    await sandbox.createContainer({
      id: 'svc',
      rootfs,
      hostname: 'svc-host',
      args: ['sh', '-c', 'echo ready; exec sleep 1000'],
    });
    await sandbox.startContainer('svc');
    await ready;
    const out = collectOutput(sandbox, 'svc', 'e1');
    await sandbox.exec('svc', {
      id: 'e1',
      args: ['sh', '-c', 'cat /etc/message; hostname; cat /proc/1/comm; exit 5'],
    });
    expect(await sandbox.wait('svc', 'e1')).toEqual({ exitCode: 5 });
    expect(out.stdout).toBe('hello from the rootfs\nsvc-host\nsleep\n');
    await sandbox.kill('svc', 9);
    await sandbox.wait('svc');
  });

  it('reports non-zero CPU, memory, network and I/O after a workload', async () => {
    const volume = join(work, 'io');
    await mkdtempLike(volume);
    const done = outputContains(sandbox, 'load', 'done');
    await sandbox.createContainer({
      id: 'load',
      rootfs,
      volumes: [{ hostPath: volume, containerPath: '/vol' }],
      resources: { cpus: 0.5, memoryBytes: 64 * 1024 * 1024, pidsMax: 32 },
      args: [
        'sh',
        '-c',
        'dd if=/dev/zero of=/vol/blob bs=64k count=32 2>/dev/null; cat /vol/blob > /dev/null; ' +
          'ping -c 2 -W 1 10.0.2.2 >/dev/null 2>&1; echo done; exec sleep 1000',
      ],
    });
    await sandbox.startContainer('load');
    await done;
    const stats = await sandbox.stats('load');
    expect(stats.cpu.usageMicros).toBeGreaterThan(0);
    expect(stats.memory.currentBytes).toBeGreaterThan(0);
    expect(stats.pids.current).toBeGreaterThan(0);
    expect(stats.memory.limitBytes).toBe(64 * 1024 * 1024);
    expect(stats.pids.limit).toBe(32);
    const eth = stats.network.find((n) => n.name !== 'lo');
    expect(eth?.txBytes).toBeGreaterThan(0);
    expect(stats.io.fs.writeBytes).toBeGreaterThanOrEqual(32 * 64 * 1024);
    expect(stats.io.fs.readBytes).toBeGreaterThanOrEqual(32 * 64 * 1024);
    await sandbox.kill('load', 9);
    await sandbox.wait('load');
  });

  it('fails the sandbox clearly when QEMU is SIGKILLed, leaving nothing behind', async () => {
    const doomed = await Sandbox.create({
      id: `doomed-${process.pid}`,
      accel: 'tcg',
      image,
      runRoot,
    });
    await doomed.createContainer({ id: 'c', rootfs, args: ['sleep', '1000'] });
    await doomed.startContainer('c');
    const pids = doomed.pids;
    const failed = new Promise<Error>((resolve) =>
      doomed.onEvent((e) => e.type === 'sandbox-failed' && resolve(e.error)),
    );
    const waiting = doomed.wait('c');
    process.kill(pids.qemu ?? 0, 'SIGKILL');
    const error = await failed;
    expect(error.message).toMatch(/QEMU was killed by SIGKILL/);
    await expect(waiting).rejects.toThrow(/VM stopped unexpectedly/);
    await doomed.destroy();
    for (const pid of Object.values(pids)) expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    expect(await mountsUnder(doomed.runDir)).toEqual([]);
    expect(existsSync(doomed.runDir)).toBe(false);
  });

  it('`edgebox sandbox run --accel auto` probes the accelerator, prints the output and exits with the container code', async () => {
    const { child, exited } = spawnSandboxRun(rootfs, runRoot, {
      accel: 'auto',
      script: 'echo hello; exit 3',
      stderr: 'pipe',
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await exited;
    expect({ code, stdout, stderr }).toEqual({ code: 3, stdout: 'hello\n', stderr: '' });
  });
  it('stops cleanly on Ctrl-C: exit code 130, no VM, mount or run directory left', async () => {
    const ctrlRunRoot = join(work, 'ctrl-c-run');
    const { child, exited } = await startSleepingSandbox(rootfs, ctrlRunRoot);
    const helpers = await childPids(child.pid ?? 0);
    expect(helpers.length).toBeGreaterThanOrEqual(2);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    for (const pid of helpers) expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    expect(await mountsUnder(ctrlRunRoot)).toEqual([]);
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(ctrlRunRoot)).toEqual([]);
  });
  it('ends QEMU and virtiofsd within 5 s of a SIGKILL of the runtime, even with the guest frozen; gc removes the rest', async () => {
    const killedRunRoot = join(work, 'killed-run');
    const { child, exited } = await startSleepingSandbox(rootfs, killedRunRoot);
    const direct = await childPids(child.pid ?? 0);
    // virtiofsd serves from a child it forks; that one must go too.
    const helpers = [...direct, ...(await Promise.all(direct.map(childPids))).flat()];
    expect(helpers.length).toBeGreaterThanOrEqual(3);
    // A guest that will not wind down (its agent frozen; here the whole VM is): nothing in
    // the guest may be needed for the host to end it.
    for (const pid of direct) process.kill(pid, 'SIGSTOP');
    child.kill('SIGKILL');
    await exited;
    // The helpers are not our children: watch them until they are gone (the kernel sends
    // them their parent-death signal; the bound is the issue's, not a timing measurement).
    const deadline = performance.now() + 5_000;
    while (helpers.some((pid) => processAlive(pid)) && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(helpers.filter((pid) => processAlive(pid))).toEqual([]);
    const { readdir } = await import('node:fs/promises');
    // Beside it, the dead runtime's id slot claim (a dot name), which gc frees too.
    const [left] = (await readdir(killedRunRoot)).filter((name) => !name.startsWith('.'));
    expect(left).toMatch(/^run-/);
    expect((await mountsUnder(join(killedRunRoot, left ?? ''))).length).toBeGreaterThan(0);
    const { hierarchies } = await cgroupHierarchies();
    const cgroupDirs = hierarchies.map(({ mountPoint }) =>
      join(mountPoint, DEFAULT_CGROUP_PARENT, left ?? ''),
    );
    for (const dir of cgroupDirs) expect(existsSync(dir)).toBe(true);
    const gc = spawn(process.execPath, [EDGEBOX_BIN, 'sandbox', 'gc'], {
      env: { ...process.env, EDGEBOX_RUN_DIR: killedRunRoot },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let gcOut = '';
    gc.stdout.on('data', (c: Buffer) => (gcOut += c.toString()));
    expect(await new Promise((resolve) => gc.on('exit', resolve))).toBe(0);
    expect(gcOut).toBe(`removed stale sandbox ${left}\n`);
    expect(await mountsUnder(killedRunRoot)).toEqual([]);
    expect(await readdir(killedRunRoot)).toEqual([]);
    for (const dir of cgroupDirs) expect(existsSync(dir)).toBe(false);
  });
});

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A volume directory as kubelet makes an emptyDir: writable by the guest's (mapped) ids. */
async function mkdtempLike(path: string): Promise<void> {
  const { chmod, mkdir } = await import('node:fs/promises');
  await mkdir(path, { recursive: true });
  await chmod(path, 0o777);
}
