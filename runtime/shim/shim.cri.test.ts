import { spawn } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxIdFor } from './config.ts';
import {
  BUSYBOX_IMAGE,
  podLeftovers,
  startContainerdWithImages,
  type PrivateContainerd,
} from '../test-support/containerd.ts';
import { CriClient } from '../test-support/cri/cri-client.ts';
import { exitCodeOf, openRemoteCommand } from '../test-support/cri/remote-command.ts';

/**
 * A pod through CRI, as kubelet drives it: containerd 1.6's CRI plugin,
 * CNI bridge networking, handler `edgebox`, two containers in one VM.
 */
const VM_TIMEOUT = 300_000;
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

/** `ctr task exec` with `input` on its stdin, which ctr ends with CloseIO. */
async function ctrExec(
  containerId: string,
  execId: string,
  command: string[],
  input: string,
): Promise<{ stdout: string; code: number | null }> {
  const ctr = spawn(
    'ctr',
    [
      '--address',
      containerd.address,
      '-n',
      'k8s.io',
      'task',
      'exec',
      '--exec-id',
      execId,
      containerId,
      ...command,
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let stdout = '';
  ctr.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  ctr.stdin.end(input);
  const code = await new Promise<number | null>((resolve) => ctr.on('close', resolve));
  return { stdout, code };
}

/** The pod's VMs: QEMU processes whose command line names the pod's run directory. */
async function qemuProcessesOf(podId: string): Promise<number> {
  let count = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (
      cmdline.startsWith('qemu-system') &&
      cmdline.includes(join(containerd.runRoot, sandboxIdFor(podId)))
    )
      count++;
  }
  return count;
}

describe('a CRI pod with runtime handler edgebox', () => {
  it(
    'runs containers in one VM on the pod network, with exec (-it, -i), attach (-i, -it), logs and stats',
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
        linux: {},
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

      const container = async (
        name: string,
        command: string[],
        options: { stdin?: boolean; tty?: boolean } = {},
      ): Promise<string> => {
        const { container_id: id } = await cri.call<{ container_id: string }>('CreateContainer', {
          pod_sandbox_id: podId,
          config: {
            metadata: { name, attempt: 0 },
            image: { image: IMAGE },
            command,
            log_path: `${name}.log`,
            envs: [{ key: 'GREETING', value: 'pod-says-hi' }],
            stdin: options.stdin ?? false,
            tty: options.tty ?? false,
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
      expect(await qemuProcessesOf(podId)).toBe(1);

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

      // kubectl exec -it: containerd's streaming server, a pty in the guest sized by ResizePty.
      const { url } = await cri.call<{ url: string }>('Exec', {
        container_id: sidecar,
        cmd: ['sh'],
        tty: true,
        stdin: true,
        stdout: true,
        stderr: false,
      });
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/exec\//);
      const session = await openRemoteCommand(url.replace(/^http/, 'ws'));
      session.resize({ width: 120, height: 40 });
      // The resize and the input reach the guest by separate paths: the shell waits for the size.
      session.send(
        'while [ "$(stty size)" = "0 0" ]; do sleep 0.1; done; tty; stty size; exit 3\n',
      );
      const ended = await session.done;
      expect({ exitCode: exitCodeOf(ended), output: session.stdout() }).toEqual({
        exitCode: 3,
        output: expect.stringMatching(/^\/dev\/pts\/\d+\r\n40 120\r$/m) as unknown,
      });

      // exec -i: stdin through the FIFO, closed with CloseIO (ctr does so at its stdin's end;
      // containerd 1.6 streams only v4, which cannot close stdin alone).
      const cat = await ctrExec(sidecar, 'cat-1', ['cat'], 'hello\n');
      expect(cat).toEqual({ stdout: 'hello\n', code: 0 });

      // kubectl attach -i: the container's own stdin, through the FIFO containerd keeps open.
      const echo = await container('echo', ['cat'], { stdin: true });
      const attach = await cri.call<{ url: string }>('Attach', {
        container_id: echo,
        stdin: true,
        stdout: true,
        stderr: true,
      });
      const attached = await openRemoteCommand(attach.url.replace(/^http/, 'ws'));
      attached.send('ping\n');
      await attached.stdoutContains('ping\n');
      attached.close();

      // kubectl attach -it: the container's own process on a pty, resized by ResizePty.
      const shell = await container('shell', ['sh'], { stdin: true, tty: true });
      const shellAttach = await cri.call<{ url: string }>('Attach', {
        container_id: shell,
        stdin: true,
        tty: true,
        stdout: true,
      });
      const terminal = await openRemoteCommand(shellAttach.url.replace(/^http/, 'ws'));
      terminal.resize({ width: 100, height: 30 });
      terminal.send(
        'while [ "$(stty size)" = "0 0" ]; do sleep 0.1; done; tty; stty size; exit 5\n',
      );
      await terminal.stdoutContains('30 100');
      expect(terminal.stdout()).toMatch(/^\/dev\/pts\/\d+\r\n30 100\r$/m);
      terminal.close();
      let shellStatus: { state: number; exit_code: number } | undefined;
      for (let i = 0; i < 600 && shellStatus?.state !== 2; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, 100));
        ({ status: shellStatus } = await cri.call<{ status: { state: number; exit_code: number } }>(
          'ContainerStatus',
          { container_id: shell },
        ));
      }
      expect(shellStatus?.exit_code).toBe(5);

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
