import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentCgroupProcs } from '../sandbox/host-cgroup.ts';
import { vmmIdsOfSlot } from '../sandbox/sandbox.ts';
import { sandboxIdFor } from './config.ts';
import { NETWORK_FILE } from './task-service.ts';
import { POD_TAP_NAME } from '../network/tap-endpoint.ts';
import {
  BUSYBOX_IMAGE,
  TEST_POD_GATEWAY,
  TEST_POD_MTU,
  TEST_POD_ROUTE,
  podLeftovers,
  startContainerdWithImages,
  type PrivateContainerd,
} from '../test-support/containerd.ts';
import { runCommand } from '../process/run-command.ts';
import { CriClient } from '../test-support/cri/cri-client.ts';
import { exitCodeOf, openRemoteCommand } from '../test-support/cri/remote-command.ts';

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

/** An HTTP GET from the host, retried until the pod's server answers (no fixed sleeps). */
async function httpGetWhenUp(url: string): Promise<string | undefined> {
  let body: string | undefined;
  for (let i = 0; i < 100 && body === undefined; i++) {
    body = await httpGet(url).catch(() => undefined);
    if (body === undefined) await new Promise((r) => setTimeout(r, 200));
  }
  return body;
}

/** The containerd shim process serving a pod (its `serve -id <pod>`). */
async function shimPidOf(podId: string): Promise<number | undefined> {
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (args.includes('serve') && args[args.indexOf('-id') + 1] === podId) return Number(pid);
  }
  return undefined;
}

function sandboxConfigFor(name: string) {
  return {
    metadata: { name, uid: `uid-${name}-1`, namespace: 'default', attempt: 0 },
    hostname: name,
    log_directory: join(containerd.dir, 'pods', name),
    dns_config: {
      servers: [TEST_POD_GATEWAY],
      searches: ['default.svc.cluster.local'],
      options: [],
    },
    // kubelet's pod cgroup: the VM's host processes and the shim are accounted there.
    linux: { cgroup_parent: `/${CGROUP_PARENT}/pod-${name}` },
  };
}

async function runPod(name: string): Promise<{ podId: string; podIp: string }> {
  const { pod_sandbox_id: podId } = await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', {
    config: sandboxConfigFor(name),
    runtime_handler: 'edgebox',
  });
  const status = await cri.call<{ status: { network: { ip: string } } }>('PodSandboxStatus', {
    pod_sandbox_id: podId,
  });
  return { podId, podIp: status.status.network.ip };
}

async function exec(
  containerId: string,
  script: string,
): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  const out = await cri.call<{ stdout: Buffer; stderr: Buffer; exit_code: number }>('ExecSync', {
    container_id: containerId,
    cmd: ['sh', '-c', script],
    timeout: 60,
  });
  return { stdout: out.stdout.toString(), stderr: out.stderr.toString(), exitCode: out.exit_code };
}

/** CreateContainer + StartContainer of a busybox container in pod `podId` (made by runPod(podName)). */
async function startContainer(
  podId: string,
  podName: string,
  name: string,
  command: string[],
  extra: object = {},
): Promise<string> {
  const { container_id: id } = await cri.call<{ container_id: string }>('CreateContainer', {
    pod_sandbox_id: podId,
    config: {
      metadata: { name, attempt: 0 },
      image: { image: IMAGE },
      command,
      log_path: `${name}.log`,
      ...extra,
    },
    sandbox_config: sandboxConfigFor(podName),
  });
  await cri.call('StartContainer', { container_id: id });
  return id;
}

/** The web pod of the first test, which the second one reaches and outlives a hostile pod beside. */
let web: { podId: string; podIp: string; sidecar: string } | undefined;
/** The web pod's host cgroups (cgroup.procs of each hierarchy), gone once the pod is removed. */
let webCgroupProcs: string[] = [];

describe('a CRI pod with runtime handler edgebox', () => {
  it(
    'runs containers in one VM on the pod network, with exec (-it, -i), attach (-i, -it), logs and stats',
    async () => {
      const { podId, podIp } = await runPod('web');
      expect(podIp).toMatch(/^10\.88\.77\.\d+$/);
      const sandboxConfig = sandboxConfigFor('web');

      const env = { envs: [{ key: 'GREETING', value: 'pod-says-hi' }] };
      // An emptyDir as kubelet makes and mounts it: the pod's disk serves it, not this directory.
      const emptyDir = join(
        containerd.dir,
        'pods',
        'web',
        'volumes',
        'kubernetes.io~empty-dir',
        'cache',
      );
      await mkdir(join(emptyDir, 'conf'), { recursive: true });
      const cache = { mounts: [{ container_path: '/cache', host_path: emptyDir }] };
      // A subPath of it as kubelet mounts one: a bind of the directory within, under volume-subpaths.
      const subPathBind = join(
        containerd.dir,
        'pods',
        'web',
        'volume-subpaths',
        'cache',
        'sidecar',
        '0',
      );
      await mkdir(subPathBind, { recursive: true });
      await runCommand('mount', ['--bind', join(emptyDir, 'conf'), subPathBind]);
      // kubelet's service account token, at a path under the image's root-owned /var.
      const tokenDir = join(containerd.dir, 'pods', 'web', 'volumes', 'kubernetes.io~projected');
      await mkdir(tokenDir, { recursive: true });
      await writeFile(join(tokenDir, 'token'), 'a-token\n');
      await startContainer(
        podId,
        'web',
        'web',
        [
          'sh',
          '-c',
          'echo serving; echo from-web > /cache/note; mkdir -p /cache/conf; echo from-web > /cache/conf/note; mkdir -p /tmp/www; echo "$GREETING" > /tmp/www/index.html; exec httpd -f -p 80 -h /tmp/www',
        ],
        { ...env, ...cache },
      );
      const sidecar = await startContainer(podId, 'web', 'sidecar', ['sleep', '600'], {
        ...env,
        mounts: [
          ...cache.mounts,
          // New directories under the image's root-owned /etc and /var (the host makes them).
          { container_path: '/etc/app', host_path: subPathBind, readonly: true },
          {
            container_path: '/var/run/secrets/kubernetes.io/serviceaccount',
            host_path: tokenDir,
            readonly: true,
          },
        ],
        working_dir: '/tmp',
      });
      await runCommand('umount', [subPathBind]);
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
      webCgroupProcs = await currentCgroupProcs(qemu[0]!);
      for (const procs of webCgroupProcs) {
        expect(procs).toContain(`/${CGROUP_PARENT}/pod-web/${podId}/cgroup.procs`);
        const members = (await readFile(procs, 'utf8')).split('\n').filter(Boolean).map(Number);
        expect(members).toEqual(expect.arrayContaining([qemu[0], shimPid]));
        const names = await Promise.all(
          members.map((pid) => readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')),
        );
        expect(names).toContain('virtiofsd\n');
      }

      expect(
        await exec(
          sidecar,
          'cat /etc/hostname; grep -v "^#" /etc/resolv.conf; pwd; echo oops >&2; exit 4',
        ),
      ).toEqual({
        stdout: `web\nsearch default.svc.cluster.local\nnameserver ${TEST_POD_GATEWAY}\n/tmp\n`,
        stderr: 'oops\n',
        exitCode: 4,
      });
      // The guest's eth0 as CNI set the pod interface up: its MTU, and the route besides the default.
      const link = await exec(sidecar, 'ip link show eth0; ip route');
      expect(link.stdout).toContain(`mtu ${TEST_POD_MTU} `);
      expect(link.stdout).toContain(`default via ${TEST_POD_GATEWAY} dev eth0`);
      expect(link.stdout).toContain(`${TEST_POD_ROUTE} via ${TEST_POD_GATEWAY} dev eth0`);

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
      const echo = await startContainer(podId, 'web', 'echo', ['cat'], { stdin: true });
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
      const shell = await startContainer(podId, 'web', 'shell', ['sh'], { stdin: true, tty: true });
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
      expect(await httpGetWhenUp(`http://${podIp}/index.html`)).toBe('pod-says-hi\n');
      // web wrote its note before serving: the sidecar sees it in the same emptyDir, which lives
      // on the pod's bounded disk, not in kubelet's host directory.
      expect(await exec(sidecar, 'cat /cache/note')).toMatchObject({ stdout: 'from-web\n' });
      const runDir = join(containerd.runRoot, sandboxIdFor(podId));
      expect(await readFile(join(runDir, 'disk', 'volumes', 'cache', 'note'), 'utf8')).toBe(
        'from-web\n',
      );
      // And through its subPath of the emptyDir, the directory within on the disk.
      expect(await exec(sidecar, 'cat /etc/app/note')).toMatchObject({ stdout: 'from-web\n' });
      expect(
        await exec(sidecar, 'cat /var/run/secrets/kubernetes.io/serviceaccount/token'),
      ).toMatchObject({ stdout: 'a-token\n' });
      expect(await readdir(emptyDir)).toEqual(['conf']);
      expect(await readdir(join(emptyDir, 'conf'))).toEqual([]);

      // containerd writes kubelet's log file in CRI format from the shim's FIFOs.
      expect(await readFile(join(sandboxConfig.log_directory, 'web.log'), 'utf8')).toMatch(
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
      // The shim's Metrics carry the pod interface's counters (containerd's NetworkStat), after the
      // HTTP exchange above; loopback is no pod traffic.
      const metrics = JSON.parse(
        (await containerd.ctr(['-n', 'k8s.io', 'task', 'metrics', '--format', 'json', sidecar]))
          .stdout,
      ) as { network?: { name: string; rx_bytes?: number; tx_bytes?: number }[] };
      expect(metrics.network?.map((n) => n.name)).toEqual(['eth0']);
      expect(metrics.network?.[0]?.rx_bytes).toBeGreaterThan(0);
      expect(metrics.network?.[0]?.tx_bytes).toBeGreaterThan(0);

      // Kept running for the next test: a second pod reaches it, and outlives a hostile neighbour.
      web = { podId, podIp, sidecar };
    },
    VM_TIMEOUT,
  );

  it(
    'connects two pods both ways and to the host; a hostile guest fails only its own pod',
    async () => {
      if (!web) throw new Error('the web pod of the previous test is not running');
      // A server on the host side of the bridge, reached by the gateway's address.
      const server = createServer((_req, res) => res.end('host-says-hi\n'));
      await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
      const port = (server.address() as AddressInfo).port;
      try {
        const { podId, podIp } = await runPod('client');
        const client = await startContainer(podId, 'client', 'client', [
          'sh',
          '-c',
          'mkdir -p /tmp/www; echo client-says-hi > /tmp/www/index.html; exec httpd -f -p 80 -h /tmp/www',
        ]);
        await httpGetWhenUp(`http://${podIp}/index.html`);

        // Pod to pod by pod IP, both ways, and out to the host.
        expect(await exec(client, `wget -q -O - http://${web.podIp}/index.html`)).toMatchObject({
          stdout: 'pod-says-hi\n',
          exitCode: 0,
        });
        expect(await exec(web.sidecar, `wget -q -O - http://${podIp}/index.html`)).toMatchObject({
          stdout: 'client-says-hi\n',
          exitCode: 0,
        });
        expect(
          await exec(client, `wget -q -O - http://${TEST_POD_GATEWAY}:${port}/`),
        ).toMatchObject({ stdout: 'host-says-hi\n', exitCode: 0 });

        // The pod's network namespace, held open so it outlives CNI's teardown: the shim's tap
        // and tc qdiscs are in it now, and must be gone after the pod.
        const network = JSON.parse(
          await readFile(
            join(
              containerd.dir,
              'state',
              'io.containerd.runtime.v2.task',
              'k8s.io',
              podId,
              NETWORK_FILE,
            ),
            'utf8',
          ),
        ) as { netnsPath: string };
        const holder = spawn('nsenter', [`--net=${network.netnsPath}`, 'sleep', '600'], {
          stdio: 'ignore',
        });
        try {
          const holderNetns = `/proc/${holder.pid}/ns/net`;
          const ownNetns = await readlink('/proc/self/ns/net');
          for (let i = 0; i < 200; i++) {
            const entered = await readlink(holderNetns).catch(() => ownNetns);
            if (entered !== ownNetns) break;
            await new Promise((r) => setTimeout(r, 25));
          }
          const inPodNetns = async (...args: string[]): Promise<string> =>
            (await runCommand('nsenter', [`--net=${holderNetns}`, ...args])).stdout;
          expect(await readlink(holderNetns)).not.toBe(ownNetns);
          expect(await inPodNetns('ip', '-o', 'link', 'show', POD_TAP_NAME)).toContain(
            POD_TAP_NAME,
          );
          expect(await inPodNetns('tc', 'qdisc', 'show')).toContain('ingress');

          // The hostile guest: root in its VM kills every process but init (the agent with them).
          const webShim = await shimPidOf(web.podId);
          expect(webShim).toBeGreaterThan(0);
          await exec(client, 'echo i > /proc/sysrq-trigger').catch(() => undefined);
          let state: { state: number; exit_code: number } | undefined;
          for (let i = 0; i < 600 && state?.state !== 2; i++) {
            state = (
              await cri.call<{ status: { state: number; exit_code: number } }>('ContainerStatus', {
                container_id: client,
              })
            ).status;
            if (state.state !== 2) await new Promise((r) => setTimeout(r, 100));
          }
          expect(state).toMatchObject({ state: 2, exit_code: 255 });
          expect(
            await readFile(join(containerd.dir, 'pods', 'client', 'client.log'), 'utf8'),
          ).toMatch(
            /stderr F edgebox: the pod's VM failed: sandbox \S+: the VM stopped unexpectedly: QEMU exited with code 0\n[^]*sysrq: Kill All Tasks/,
          );

          // The neighbour, its shim and containerd carry on.
          expect(await shimPidOf(web.podId)).toBe(webShim);
          expect(await httpGet(`http://${web.podIp}/index.html`)).toBe('pod-says-hi\n');
          expect(await exec(web.sidecar, 'echo still-here')).toMatchObject({
            stdout: 'still-here\n',
          });

          await cri.call('StopPodSandbox', { pod_sandbox_id: podId });
          await cri.call('RemovePodSandbox', { pod_sandbox_id: podId });
          expect(await podLeftovers(containerd.runRoot, sandboxIdFor(podId))).toEqual([]);
          // CNI took the pod interface; the shim's tap and every qdisc went with the pod.
          expect(await inPodNetns('ip', '-o', 'link', 'show')).not.toContain(POD_TAP_NAME);
          expect(await inPodNetns('tc', 'qdisc', 'show')).not.toContain('ingress');
        } finally {
          holder.kill('SIGKILL');
        }
      } finally {
        server.close();
      }

      await cri.call('StopPodSandbox', { pod_sandbox_id: web.podId });
      await cri.call('RemovePodSandbox', { pod_sandbox_id: web.podId });
      expect(await podLeftovers(containerd.runRoot, sandboxIdFor(web.podId))).toEqual([]);
      // The shims made the pods' cgroups and their parents (no kubelet here) and removed them all.
      for (const procs of webCgroupProcs)
        expect(
          existsSync(
            procs.slice(0, procs.indexOf(`/${CGROUP_PARENT}/`) + CGROUP_PARENT.length + 1),
          ),
        ).toBe(false);
      web = undefined;
    },
    VM_TIMEOUT,
  );

  it(
    'applies UpdateContainerResources in the guest; an OOM kill there reads OOMKilled',
    async () => {
      const { podId } = await runPod('hog');
      // Created without a memory limit; it allocates 100 MB once told to.
      const id = await startContainer(podId, 'hog', 'hog', [
        'sh',
        '-c',
        'while [ ! -e /tmp/go ]; do sleep 0.2; done; x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived',
      ]);

      await cri.call('UpdateContainerResources', {
        container_id: id,
        linux: {
          memory_limit_in_bytes: 32 * 1024 * 1024,
          cpu_period: 100_000,
          cpu_quota: 50_000,
          cpu_shares: 512,
          cpuset_cpus: '0',
        },
      });
      // Read back in the guest: root in the container mounts the guest's cgroup2 hierarchy.
      const cgroup = await exec(
        id,
        `mkdir -p /tmp/cg && mount -t cgroup2 none /tmp/cg && cd /tmp/cg/ctr-${id} && cat cpu.weight cpuset.cpus memory.swap.max; umount /tmp/cg`,
      );
      // shares 512 → weight 20 (runc's map); no swap beside the memory limit.
      expect(cgroup.stdout).toBe('20\n0\n0\n');
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
