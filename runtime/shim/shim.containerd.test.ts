import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BUSYBOX_IMAGE,
  RUNTIME_TYPE,
  podLeftovers,
  startContainerdWithImages,
  type PrivateContainerd,
} from '../test-support/containerd.ts';
import { parseIdentity } from '../process/identity.ts';

/**
 * The shim under a real containerd (Debian's 1.6, private config and state)
 * booting real VMs under QEMU TCG: `ctr run` with the edgebox runtime.
 */
const VM_TIMEOUT = 240_000;
const NS = 'edgebox-test';
const IMAGE = BUSYBOX_IMAGE;
let containerd: PrivateContainerd;

beforeAll(async () => {
  containerd = await startContainerdWithImages(NS);
}, VM_TIMEOUT);

afterAll(async () => {
  await containerd?.stop();
});

async function taskStatus(id: string): Promise<string | undefined> {
  const { stdout } = await containerd.ctr(['-n', NS, 'task', 'ls']);
  const line = stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
  return line?.split(/\s+/)[2];
}

/** Polls containerd's own view (no fixed sleeps): the shim's TaskExit has to reach it. */
async function untilStatus(id: string, wanted: string | undefined): Promise<void> {
  for (let i = 0; (await taskStatus(id)) !== wanted; i++) {
    if (i > 600) throw new Error(`task ${id} never became ${wanted}: ${await taskStatus(id)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function leftovers(podId: string): Promise<string[]> {
  return podLeftovers(containerd.runRoot, podId);
}

/** `ctr run -d` of a container that sleeps, once containerd reports it running. */
async function runSleeping(id: string, flags: string[] = []): Promise<void> {
  await containerd.ctr([
    '-n',
    NS,
    'run',
    '-d',
    '--runtime',
    RUNTIME_TYPE,
    ...flags,
    IMAGE,
    id,
    'sleep',
    '600',
  ]);
  await untilStatus(id, 'RUNNING');
}

async function removeTask(id: string): Promise<void> {
  await containerd.ctr(['-n', NS, 'task', 'delete', id], { allowFail: true });
  await containerd.ctr(['-n', NS, 'container', 'rm', id]);
}

describe('ctr run --runtime io.containerd.edgebox.v2', () => {
  it(
    'runs ctr task exec in the VM and ends the task on ctr task kill',
    async () => {
      await runSleeping('long');
      const exec = await containerd.ctr(
        ['-n', NS, 'task', 'exec', '--exec-id', 'e1', 'long', 'sh', '-c', 'echo from-exec; exit 3'],
        { allowFail: true },
      );
      expect(exec.stdout).toBe('from-exec\n');
      expect(exec.code).toBe(3);
      // The exec's process spec carries the container's rlimits too.
      const limits = await containerd.ctr([
        '-n',
        NS,
        'task',
        'exec',
        '--exec-id',
        'l1',
        'long',
        'sh',
        '-c',
        'ulimit -Sn; ulimit -Hn',
      ]);
      expect(limits.stdout).toBe('1024\n1024\n');

      // ctr task pause/resume stop the VM itself: the guest's clock stands still meanwhile.
      const uptime = async (execId: string): Promise<number> =>
        Number(
          (
            await containerd.ctr([
              '-n',
              NS,
              'task',
              'exec',
              '--exec-id',
              execId,
              'long',
              'cat',
              '/proc/uptime',
            ])
          ).stdout.split(' ')[0],
        );
      const guestBefore = await uptime('u1');
      const hostBefore = performance.now();
      await containerd.ctr(['-n', NS, 'task', 'pause', 'long']);
      expect(await taskStatus('long')).toBe('PAUSED');
      await new Promise((r) => setTimeout(r, 4000));
      await containerd.ctr(['-n', NS, 'task', 'resume', 'long']);
      expect(await taskStatus('long')).toBe('RUNNING');
      const guestElapsed = (await uptime('u2')) - guestBefore;
      const hostElapsedSeconds = (performance.now() - hostBefore) / 1000;
      expect(guestElapsed).toBeLessThan(hostElapsedSeconds - 3);
      await containerd.ctr(['-n', NS, 'task', 'kill', '-s', 'SIGKILL', 'long']);
      await untilStatus('long', 'STOPPED');
      await removeTask('long');
      expect(await leftovers('long')).toEqual([]);
    },
    VM_TIMEOUT,
  );

  it(
    'refuses a privileged container, naming the field',
    async () => {
      const run = await containerd.ctr(
        ['-n', NS, 'run', '--rm', '--privileged', '--runtime', RUNTIME_TYPE, IMAGE, 'priv', 'true'],
        { allowFail: true },
      );
      expect(run.code).not.toBe(0);
      expect(run.stderr).toMatch(
        /linux\.devices\[0\] \(\/dev\/[^)]+\): host devices cannot be passed into the VM/,
      );
      await containerd.ctr(['-n', NS, 'container', 'rm', 'priv'], { allowFail: true });
      expect(await leftovers('priv')).toEqual([]);
    },
    VM_TIMEOUT,
  );

  it(
    'fails the task with the reason when QEMU is SIGKILLed',
    async () => {
      await runSleeping('victim', ['--log-uri', `file://${join(containerd.dir, 'victim.log')}`]);
      const qemu = parseIdentity(
        await readFile(join(containerd.runRoot, 'victim', 'qemu.pid'), 'utf8'),
      )!.pid;
      process.kill(qemu, 'SIGKILL');
      await untilStatus('victim', 'STOPPED');
      expect(await readFile(join(containerd.dir, 'victim.log'), 'utf8')).toMatch(
        /edgebox: the pod's VM failed: .*QEMU was killed by SIGKILL/,
      );
      await removeTask('victim');
      expect(await leftovers('victim')).toEqual([]);
    },
    VM_TIMEOUT,
  );

  it(
    "cleans up after a SIGKILLed shim through containerd's delete path",
    async () => {
      await runSleeping('orphan');
      const shim = await shimPid('orphan');
      process.kill(shim, 'SIGKILL');
      // containerd sees the connection drop, runs the shim's delete and forgets the task.
      await untilStatus('orphan', undefined);
      // containerd runs `shim delete` in the background of its task list: poll for its end result.
      for (let i = 0; i < 300 && (await leftovers('orphan')).length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await leftovers('orphan')).toEqual([]);
      await containerd.ctr(['-n', NS, 'container', 'rm', 'orphan']);
    },
    VM_TIMEOUT,
  );

  it(
    'prints the container output and exits with its code, leaving nothing behind',
    async () => {
      const run = await containerd.ctr(
        [
          '-n',
          NS,
          'run',
          '--rm',
          '--runtime',
          RUNTIME_TYPE,
          IMAGE,
          'run1',
          'sh',
          '-c',
          'cat /etc/message; ulimit -Hn; grep NoNewPrivs /proc/self/status; echo to-stderr >&2; exit 7',
        ],
        { allowFail: true },
      );
      // ctr's default spec sets RLIMIT_NOFILE to 1024 (the guest's own hard limit is 4096) and
      // noNewPrivileges.
      expect(run.stdout).toBe('hello from the rootfs\n1024\nNoNewPrivs:\t1\n');
      expect(run.stderr).toContain('to-stderr');
      expect(run.code).toBe(7);
      expect(await readdir(containerd.runRoot).catch(() => [])).toEqual(
        expect.not.arrayContaining(['run1']),
      );
    },
    VM_TIMEOUT,
  );
});

async function shimPid(id: string): Promise<number> {
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (
      args.includes('serve') &&
      args[args.indexOf('-id') + 1] === id &&
      args.some((a) => a.endsWith('containerd-shim-edgebox-v2'))
    )
      return Number(pid);
  }
  throw new Error(`no shim serving ${id}`);
}
