import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentCgroupProcs } from '../sandbox/host-cgroup.ts';
import { vmmIdsOfSlot } from '../sandbox/sandbox.ts';
import { sandboxIdFor } from './config.ts';
import {
  BUSYBOX_IMAGE,
  podLeftovers,
  startContainerdWithImages,
  type PrivateContainerd,
} from '../test-support/containerd.ts';
import { CriClient } from '../test-support/cri/cri-client.ts';

/**
 * A pod through CRI, as kubelet drives it: containerd 1.6's CRI plugin,
 * CNI bridge networking, handler `edgebox`, two containers in one VM.
 */
const VM_TIMEOUT = 300_000;
const CGROUP_PARENT = `edgebox-cri-test-${process.pid}`;
const IMAGE = BUSYBOX_IMAGE;
let containerd: PrivateContainerd;
let cri: CriClient;

beforeAll(async () => {
  containerd = await startContainerdWithImages('k8s.io');
  cri = new CriClient(containerd.address);
}, VM_TIMEOUT);

afterAll(async () => {
  cri?.close();
  await containerd?.stop();
});

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** The pod's VMs: pids of the QEMU processes whose command line names the pod's run directory. */
async function qemuProcessesOf(podId: string): Promise<number[]> {
  const pids = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (
      cmdline.startsWith('qemu-system') &&
      cmdline.includes(join(containerd.runRoot, sandboxIdFor(podId)))
    )
      pids.push(Number(pid));
  }
  return pids;
}

describe('a CRI pod with runtime handler edgebox', () => {
  it(
    'runs two containers in one VM on the pod network, with exec, logs and stats',
    async () => {
      const logDir = join(containerd.dir, 'pods', 'web');
      const sandboxConfig = {
        metadata: { name: 'web', uid: 'uid-web-1', namespace: 'default', attempt: 0 },
        hostname: 'web',
        log_directory: logDir,
        dns_config: {
          servers: ['10.88.77.1'],
          searches: ['default.svc.cluster.local'],
          options: [],
        },
        // kubelet's pod cgroup: the VM's host processes and the shim are accounted there.
        linux: { cgroup_parent: `/${CGROUP_PARENT}/pod-web` },
      };
      const { pod_sandbox_id: podId } = await cri.call<{ pod_sandbox_id: string }>(
        'RunPodSandbox',
        {
          config: sandboxConfig,
          runtime_handler: 'edgebox',
        },
      );
      const status = await cri.call<{ status: { network: { ip: string }; state: number } }>(
        'PodSandboxStatus',
        { pod_sandbox_id: podId },
      );
      const podIp = status.status.network.ip;
      expect(podIp).toMatch(/^10\.88\.77\.\d+$/);

      const container = async (name: string, command: string[]): Promise<string> => {
        const { container_id: id } = await cri.call<{ container_id: string }>('CreateContainer', {
          pod_sandbox_id: podId,
          config: {
            metadata: { name, attempt: 0 },
            image: { image: IMAGE },
            command,
            log_path: `${name}.log`,
            envs: [{ key: 'GREETING', value: 'pod-says-hi' }],
          },
          sandbox_config: sandboxConfig,
        });
        await cri.call('StartContainer', { container_id: id });
        return id;
      };
      await container('web', [
        'sh',
        '-c',
        'echo serving; mkdir -p /tmp/www; echo "$GREETING" > /tmp/www/index.html; exec httpd -f -p 80 -h /tmp/www',
      ]);
      const sidecar = await container('sidecar', ['sleep', '600']);
      const qemu = await qemuProcessesOf(podId);
      expect(qemu).toHaveLength(1);
      // In the pod's netns QEMU runs as its slot's VMM id with no capabilities, on a tap made for it.
      const qemuStatus = await readFile(`/proc/${qemu[0]}/status`, 'utf8');
      const [uids, gids] = [/^Uid:\s+(.*)$/m, /^Gid:\s+(.*)$/m].map((re) =>
        qemuStatus.match(re)![1]!.split(/\s+/).map(Number),
      );
      expect(new Set(uids)).toEqual(new Set([uids![0]]));
      expect(uids![0]).toBeGreaterThanOrEqual(vmmIdsOfSlot(0).uid);
      expect(gids![0]).toBe(uids![0]);
      expect(qemuStatus).toMatch(/^CapEff:\s+0+$/m);
      expect(qemuStatus).toMatch(/^Seccomp:\s+2$/m);
      // QEMU, virtiofsd and the shim (QEMU's parent) in the pod sandbox's cgroup, in every hierarchy.
      const shimPid = Number(/^PPid:\s+(\d+)$/m.exec(qemuStatus)![1]);
      const podCgroup = await currentCgroupProcs(qemu[0]!);
      for (const procs of podCgroup) {
        expect(procs).toContain(`/${CGROUP_PARENT}/pod-web/${podId}/cgroup.procs`);
        const members = (await readFile(procs, 'utf8')).split('\n').filter(Boolean).map(Number);
        expect(members).toEqual(expect.arrayContaining([qemu[0], shimPid]));
        const names = await Promise.all(
          members.map((pid) => readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')),
        );
        expect(names).toContain('virtiofsd\n');
      }

      const exec = await cri.call<{ stdout: Buffer; stderr: Buffer; exit_code: number }>(
        'ExecSync',
        {
          container_id: sidecar,
          cmd: [
            'sh',
            '-c',
            'cat /etc/hostname; grep nameserver /etc/resolv.conf; echo oops >&2; exit 4',
          ],
          timeout: 60,
        },
      );
      expect({
        stdout: exec.stdout.toString(),
        stderr: exec.stderr.toString(),
        exitCode: exec.exit_code,
      }).toEqual({ stdout: 'web\nnameserver 10.88.77.1\n', stderr: 'oops\n', exitCode: 4 });

      // The pod IP answers from inside the VM, through the tap and tc mirred.
      let body: string | undefined;
      for (let i = 0; i < 100 && body === undefined; i++) {
        body = await httpGet(`http://${podIp}/index.html`).catch(() => undefined);
        if (body === undefined) await new Promise((r) => setTimeout(r, 200));
      }
      expect(body).toBe('pod-says-hi\n');

      // containerd writes kubelet's log file in CRI format from the shim's FIFOs.
      expect(await readFile(join(logDir, 'web.log'), 'utf8')).toMatch(
        /^\d{4}-\d\d-\d\dT[\d:.]+Z stdout F serving\n/,
      );

      const stats = await cri.call<{
        stats: {
          cpu: { usage_core_nano_seconds: { value: number } };
          memory: { working_set_bytes: { value: number } };
        };
      }>('ContainerStats', { container_id: sidecar });
      expect(stats.stats.cpu.usage_core_nano_seconds.value).toBeGreaterThan(0);
      expect(stats.stats.memory.working_set_bytes.value).toBeGreaterThan(0);

      await cri.call('StopPodSandbox', { pod_sandbox_id: podId });
      await cri.call('RemovePodSandbox', { pod_sandbox_id: podId });
      expect(await podLeftovers(containerd.runRoot, sandboxIdFor(podId))).toEqual([]);
      // The shim made the pod's cgroup and its parents (no kubelet here) and removed them all.
      for (const procs of podCgroup)
        expect(
          existsSync(
            procs.slice(0, procs.indexOf(`/${CGROUP_PARENT}/`) + CGROUP_PARENT.length + 1),
          ),
        ).toBe(false);
    },
    VM_TIMEOUT,
  );

  it(
    'applies UpdateContainerResources in the guest; an OOM kill there reads OOMKilled',
    async () => {
      const sandboxConfig = {
        metadata: { name: 'hog', uid: 'uid-hog-1', namespace: 'default', attempt: 0 },
        hostname: 'hog',
        log_directory: join(containerd.dir, 'pods', 'hog'),
        linux: {},
      };
      const { pod_sandbox_id: podId } = await cri.call<{ pod_sandbox_id: string }>(
        'RunPodSandbox',
        { config: sandboxConfig, runtime_handler: 'edgebox' },
      );
      // Created without a memory limit; it allocates 100 MB once told to.
      const { container_id: id } = await cri.call<{ container_id: string }>('CreateContainer', {
        pod_sandbox_id: podId,
        config: {
          metadata: { name: 'hog', attempt: 0 },
          image: { image: IMAGE },
          command: [
            'sh',
            '-c',
            'while [ ! -e /tmp/go ]; do sleep 0.2; done; x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived',
          ],
          log_path: 'hog.log',
        },
        sandbox_config: sandboxConfig,
      });
      await cri.call('StartContainer', { container_id: id });

      await cri.call('UpdateContainerResources', {
        container_id: id,
        linux: { memory_limit_in_bytes: 32 * 1024 * 1024, cpu_period: 100_000, cpu_quota: 50_000 },
      });
      // The guest cgroup's memory.max, as the shim's Stats reads it back.
      const metrics = await containerd.ctr(['-n', 'k8s.io', 'task', 'metrics', id]);
      expect(metrics.stdout).toMatch(/memory\.limit_in_bytes\s+33554432\s/);

      // containerd's event stream, as `ctr events` prints it: "<time> <namespace> <topic> <json>".
      const events = spawn('ctr', ['--address', containerd.address, 'events'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let eventLog = '';
      events.stdout.on('data', (chunk: Buffer) => (eventLog += chunk.toString()));
      await cri.call('ExecSync', { container_id: id, cmd: ['touch', '/tmp/go'], timeout: 60 });
      const exited = async (): Promise<{ exit_code: number; reason: string } | undefined> => {
        const { status } = await cri.call<{
          status: { state: number; exit_code: number; reason: string };
        }>('ContainerStatus', { container_id: id });
        return status.state === 2
          ? { exit_code: status.exit_code, reason: status.reason }
          : undefined;
      };
      let status = await exited();
      for (let i = 0; i < 1200 && status === undefined; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = await exited();
      }
      // ctr's subscription may print the container's exit a little after CRI handled it.
      for (
        let i = 0;
        i < 100 && !eventLog.includes(`/tasks/exit {"container_id":"${id}","id":"${id}"`);
        i++
      )
        await new Promise((r) => setTimeout(r, 100));
      events.kill();
      // containerd's CRI sets OOMKilled only from the shim's TaskOOM event.
      expect(status).toEqual({ exit_code: 137, reason: 'OOMKilled' });
      const topics = eventLog
        .split('\n')
        .filter((line) => line.includes(`"${id}"`))
        .map((line) => /\s(\/tasks\/[a-z-]+)\s/.exec(line)?.[1]);
      // The exec that touched the file comes first; then the OOM, before the container's exit.
      expect(topics.filter((t) => t === '/tasks/oom' || t === '/tasks/exit').slice(-2)).toEqual([
        '/tasks/oom',
        '/tasks/exit',
      ]);

      await cri.call('StopPodSandbox', { pod_sandbox_id: podId });
      await cri.call('RemovePodSandbox', { pod_sandbox_id: podId });
      expect(await podLeftovers(containerd.runRoot, sandboxIdFor(podId))).toEqual([]);
    },
    VM_TIMEOUT,
  );
});
