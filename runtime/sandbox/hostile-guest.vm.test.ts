import { existsSync } from 'node:fs';
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGuestImage, type GuestImage } from '../image/build.ts';
import { runCommand } from '../process/run-command.ts';
import { mappedRoot } from '../sharing/id-map.ts';
import { mountsUnder } from '../sharing/share.ts';
import { makeBusyboxRootfs } from '../test-support/busybox-rootfs.ts';
import { childPids } from '../test-support/cli-sandbox.ts';
import type { ContainerSpec } from './config.ts';
import { Sandbox } from './sandbox.ts';

/**
 * A hostile guest (root in its VM, its container started with every
 * capability) does what an attacker did against the sandbox, in one VM under
 * QEMU TCG; the host must show nothing of it. Findings of the security
 * review, by number: 1 setuid/root files, 2 mount propagation, 3 disk,
 * 4 file descriptors, 6 QEMU's confinement and NIC. (5, supervision, is in
 * sandbox.vm.test.ts, with the runtime killed.)
 */
const VM_TIMEOUT = 240_000;
const DISK_MIB = 64;
const FD_LIMIT = 256;
let image: GuestImage;
let rootfs: string;
let work: string;
let sandbox: Sandbox;
const runRoot = join(tmpdir(), 'edgebox-hostile-test-run');

beforeAll(async () => {
  image = await buildGuestImage();
  rootfs = await makeBusyboxRootfs();
  // A setuid program the image brought, for the guest to copy with its mode.
  await copyFile(join(rootfs, 'bin', 'busybox'), join(rootfs, 'image-suid'));
  await chmod(join(rootfs, 'image-suid'), 0o4755);
  work = await mkdtemp(join(tmpdir(), 'edgebox-hostile-test-'));
  sandbox = await Sandbox.create({
    id: `hostile-${process.pid}`,
    accel: 'tcg',
    image,
    runRoot,
    diskMiB: DISK_MIB,
    diskDir: work,
    virtiofsdFdLimit: FD_LIMIT,
  });
}, VM_TIMEOUT);

afterAll(async () => {
  await sandbox?.destroy();
  await rm(rootfs, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

/** virtiofsd and the child it forks to serve the guest. */
async function virtiofsdPids(): Promise<number[]> {
  const parent = sandbox.pids.virtiofsd ?? 0;
  return [parent, ...(await childPids(parent))];
}

async function openFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

describe('the sandbox against a hostile guest (QEMU TCG)', { timeout: VM_TIMEOUT }, () => {
  it('confines QEMU: seccomp filtering, no host root, and no NIC when the pod asked for no network', async () => {
    const qemu = await readFile(`/proc/${sandbox.pids.qemu}/status`, 'utf8');
    expect(qemu).toMatch(/^Seccomp:\s+2$/m);
    expect(qemu).not.toMatch(/^Uid:\s+0\s/m);
    expect(qemu).toMatch(/^CapEff:\s+0+$/m);
    for (const pid of await virtiofsdPids()) {
      expect(await readFile(`/proc/${pid}/status`, 'utf8')).toMatch(
        new RegExp(`^Uid:\\s+${mappedRoot(sandbox.idMap)}\\s`, 'm'),
      );
    }
    // QEMU and virtiofsd run in the sandbox's own host cgroup, which accounts their memory.
    expect(sandbox.hostCgroup.path).toBe(`edgebox/${sandbox.id}`);
    for (const pid of [sandbox.pids.qemu ?? 0, ...(await virtiofsdPids())]) {
      const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n');
      // v1's memory hierarchy, else v2's unified one.
      const memory =
        lines.find((line) => /^\d+:memory:/.test(line)) ??
        lines.find((line) => line.startsWith('0::'));
      expect(memory).toMatch(new RegExp(`:/edgebox/${sandbox.id}$`));
    }
    const usage = await Promise.any(
      sandbox.hostCgroup.dirs.flatMap((dir) =>
        ['memory.usage_in_bytes', 'memory.current'].map((file) =>
          readFile(join(dir, file), 'utf8'),
        ),
      ),
    );
    expect(Number(usage)).toBeGreaterThan(0);

    let stdout = '';
    sandbox.onEvent((e) => {
      if (e.type === 'output' && e.containerId === 'net') stdout += e.data.toString();
    });
    await sandbox.createContainer({
      id: 'net',
      rootfs,
      args: ['sed', '-n', 's/^ *\\([^:]*\\):.*/\\1/p', '/proc/net/dev'],
    });
    await sandbox.startContainer('net');
    expect(await sandbox.wait('net')).toEqual({ exitCode: 0 });
    expect(stdout).toBe('lo\n');
  });

  it('keeps guest ids off host root, host mounts out, the disk and virtiofsd fds bounded', async () => {
    const volume = join(work, 'volume');
    await mkdir(volume);
    await chmod(volume, 0o777);
    // A volume whose source is on a shared mount, as everything under systemd's `/` is.
    const source = join(work, 'shared-source');
    const later = join(source, 'later');
    await mkdir(later, { recursive: true });
    await runCommand('mount', ['--bind', source, source]);
    await runCommand('mount', ['--make-shared', source]);
    const before = await readdir(rootfs);
    let output = '';
    let exitedEarly: (err: Error) => void = () => undefined;
    const early = new Promise<never>((_resolve, reject) => (exitedEarly = reject));
    early.catch(() => undefined);
    sandbox.onEvent((e) => {
      if (e.type === 'output' && e.containerId === 'attacker') output += e.data.toString();
      if (e.type === 'container-exited' && e.containerId === 'attacker')
        exitedEarly(new Error(`the attacker exited early (${e.status.exitCode}):\n${output}`));
    });
    try {
      await sandbox.createContainer({
        id: 'attacker',
        rootfs,
        volumes: [
          { hostPath: volume, containerPath: '/vol' },
          { hostPath: source, containerPath: '/src' },
        ],
        args: [
          'sh',
          '-c',
          [
            // 1: setuid-root programs and root-owned files for the host to trip over.
            'cp /bin/busybox /vol/suid && chown 0:0 /vol/suid',
            'chmod 6755 /vol/suid || echo refused: chmod 6755',
            'chmod g+s /vol/suid || echo refused: chmod g+s',
            'mknod -m 6755 /vol/fifo p || echo refused: mknod',
            'cp -p /image-suid /vol/copied',
            'cp /bin/busybox /rootfs-suid && chmod 4755 /rootfs-suid || echo refused: rootfs chmod',
            'cp -p /image-suid /rootfs-copied',
            // 2: wait for the host to mount under the volume's source, then look.
            'echo ready',
            'while [ ! -e /vol/go ]; do sleep 0.1; done',
            'echo "seen: $(ls /src/later)"',
            // 3: more than the disk bound, in one go.
            'dd if=/dev/zero of=/big bs=1M count=100 2>&1 | grep -o "No space left on device" | head -1',
            // 4: pin host fds: every file looked up keeps one in virtiofsd.
            `i=0; while [ $i -lt ${FD_LIMIT * 2} ]; do true > /vol/f$i 2>/dev/null; i=$((i+1)); done`,
            'echo attacked',
            'while [ ! -e /vol/done ]; do sleep 0.1; done',
          ].join('\n'),
        ],
      });
      const ready = new Promise<void>((resolve) => {
        const off = sandbox.onEvent(() => {
          if (output.includes('ready\n')) {
            off();
            resolve();
          }
        });
      });
      const attacked = new Promise<void>((resolve) => {
        const off = sandbox.onEvent(() => {
          if (output.includes('attacked\n')) {
            off();
            resolve();
          }
        });
      });
      await sandbox.startContainer('attacker');
      await Promise.race([ready, early]);
      await runCommand('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'host-later', later]);
      await writeFile(join(later, 'host-secret'), 'x');
      await writeFile(join(volume, 'go'), '');
      await Promise.race([attacked, early]);
      // 4: the guest has looked up twice the limit; virtiofsd holds no more than the limit.
      for (const pid of await virtiofsdPids())
        expect(await openFds(pid)).toBeLessThanOrEqual(FD_LIMIT);
      await writeFile(join(volume, 'done'), '');
      expect(await sandbox.wait('attacker')).toEqual({ exitCode: 0 });

      // 1: what the guest made as its root is the mapped id's on the host, never root's,
      // and no setuid or setgid bit reached the host: the guest was told no.
      expect(output).toContain('refused: chmod 6755\n');
      expect(output).toContain('refused: chmod g+s\n');
      expect(output).toContain('refused: rootfs chmod\n');
      expect(output).toContain('refused: mknod\n');
      const guestRoot = mappedRoot(sandbox.idMap);
      const { count } = sandbox.idMap;
      const upper = join(sandbox.runDir, 'disk', 'containers', 'attacker', 'upper');
      const plainCopies = [join(volume, 'suid'), join(upper, 'rootfs-suid')];
      const made = [
        ...plainCopies,
        join(volume, 'fifo'),
        join(volume, 'copied'),
        join(upper, 'rootfs-copied'),
      ];
      const onHost = await Promise.all(
        made.map(async (path) => {
          const file = await stat(path).catch(() => undefined);
          const mapped = (id: number): boolean => id >= guestRoot && id < guestRoot + count;
          return (
            file && {
              path,
              mapped: mapped(file.uid) && mapped(file.gid),
              setid: file.mode & 0o6000,
            }
          );
        }),
      );
      // (cp -p gave its copy the owner the guest sees on the image's file: nobody, mapped too.)
      for (const path of plainCopies) {
        const file = await stat(path);
        expect({ path, uid: file.uid, gid: file.gid }).toEqual({
          path,
          uid: guestRoot,
          gid: guestRoot,
        });
      }
      for (const file of onHost.filter((f) => f !== undefined))
        expect(file).toEqual({ path: file.path, mapped: true, setid: 0 });
      // The rootfs itself is read, never written.
      expect(await readdir(rootfs)).toEqual(before);

      // 2: the host's later mount never reached the guest.
      expect(output).toContain('seen: \n');
      // 3: the write past the bound failed in the guest, and the host gave no more than the bound.
      expect(output).toContain('No space left on device\n');
      const disk = await stat(join(work, `${sandbox.id}.disk.img`));
      expect(disk.blocks * 512).toBeLessThanOrEqual(DISK_MIB * 1024 * 1024);

      await sandbox.deleteContainer('attacker');
      // 2: removing the container took nothing of the host's mounts with it.
      expect(await mountsUnder(later)).toEqual([later]);
      expect(await readdir(later)).toEqual(['host-secret']);
    } finally {
      await runCommand('umount', [later]).catch(() => undefined);
      await runCommand('umount', [source]).catch(() => undefined);
    }
  });

  it("bounds the pod's volumes with its disk, and its containers share them", async () => {
    const outputs = new Map<string, string>();
    sandbox.onEvent((e) => {
      if (e.type === 'output')
        outputs.set(e.containerId, (outputs.get(e.containerId) ?? '') + e.data.toString());
    });
    const run = async (
      id: string,
      spec: Partial<ContainerSpec>,
      script: string,
    ): Promise<string> => {
      await sandbox.createContainer({ id, rootfs, args: ['sh', '-c', script], ...spec });
      await sandbox.startContainer(id);
      expect(await sandbox.wait(id)).toEqual({ exitCode: 0 });
      return outputs.get(id) ?? '';
    };
    // 3: an emptyDir (a pod volume) filled past the bound, in one go.
    const written = await run(
      'filler',
      {
        volumes: [
          { podVolume: 'cache', containerPath: '/cache' },
          { podVolume: 'tmpfs-0', scope: 'container', containerPath: '/scratch' },
        ],
      },
      [
        'echo mine > /scratch/own',
        'dd if=/dev/zero of=/cache/big bs=1M count=100 2>&1 | grep -o "No space left on device" | head -1',
      ].join('\n'),
    );
    expect(written).toBe('No space left on device\n');
    const onHost = join(sandbox.runDir, 'disk', 'volumes', 'cache');
    expect((await stat(onHost)).uid).toBe(mappedRoot(sandbox.idMap));
    const disk = await stat(join(work, `${sandbox.id}.disk.img`));
    expect(disk.blocks * 512).toBeLessThanOrEqual(DISK_MIB * 1024 * 1024);
    // Another container of the pod naming the volume sees what the first wrote (read-only
    // rootfs: the full disk has no room for a writable layer's directories).
    const seen = await run(
      'reader',
      { readOnlyRootfs: true, volumes: [{ podVolume: 'cache', containerPath: '/data' }] },
      'stat -c %s /data/big',
    );
    expect(Number(seen)).toBe((await stat(join(onHost, 'big'))).size);
    expect(Number(seen)).toBeGreaterThan(DISK_MIB * 1024 * 1024 * 0.5);
    // A container's own volume goes with it; the pod's stays for the pod's next containers.
    const own = join(sandbox.runDir, 'disk', 'containers', 'filler', 'volumes', 'tmpfs-0');
    expect(await readFile(join(own, 'own'), 'utf8')).toBe('mine\n');
    await sandbox.deleteContainer('filler');
    await sandbox.deleteContainer('reader');
    expect(existsSync(own)).toBe(false);
    expect(existsSync(join(onHost, 'big'))).toBe(true);
    await rm(join(onHost, 'big'));
  });

  it('shares a read-only rootfs without a writable layer when asked', async () => {
    let stderr = '';
    sandbox.onEvent((e) => {
      if (e.type === 'output' && e.containerId === 'ro-rootfs') stderr += e.data.toString();
    });
    await sandbox.createContainer({
      id: 'ro-rootfs',
      rootfs,
      readOnlyRootfs: true,
      args: ['sh', '-c', 'cat /etc/message && touch /etc/new'],
    });
    await sandbox.startContainer('ro-rootfs');
    expect((await sandbox.wait('ro-rootfs')).exitCode).not.toBe(0);
    expect(stderr).toMatch(/hello from the rootfs\n[^]*Read-only file system/);
    expect(existsSync(join(rootfs, 'etc', 'new'))).toBe(false);
    expect(existsSync(join(sandbox.runDir, 'disk', 'containers', 'ro-rootfs'))).toBe(false);
  });

  it('leaves no disk image, mount, cgroup or run directory once stopped', async () => {
    const runDir = sandbox.runDir;
    const cgroupDirs = sandbox.hostCgroup.dirs;
    expect(cgroupDirs.length).toBeGreaterThan(0);
    await sandbox.stop();
    for (const dir of cgroupDirs) expect(existsSync(dir)).toBe(false);
    expect(await mountsUnder(runDir)).toEqual([]);
    expect(existsSync(runDir)).toBe(false);
    expect(existsSync(join(work, `${sandbox.id}.disk.img`))).toBe(false);
  });
});
