import { readFile, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGuestImage } from '../image/build.ts';
import { sandboxIdFor } from './config.ts';
import { makeBusyboxRootfs } from '../test-support/busybox-rootfs.ts';
import {
  podLeftovers,
  startContainerd,
  type PrivateContainerd,
} from '../test-support/containerd.ts';
import { CriClient } from '../test-support/cri/cri-client.ts';
import { buildOciArchive } from '../test-support/oci-image.ts';

/**
 * A pod through CRI, as kubelet drives it: containerd 1.6's CRI plugin,
 * CNI bridge networking, handler `edgebox`, two containers in one VM.
 */
const VM_TIMEOUT = 300_000;
const IMAGE = 'edgebox.test/busybox:1';
let containerd: PrivateContainerd;
let cri: CriClient;
let archive: string;

beforeAll(async () => {
  const image = await buildGuestImage();
  const rootfs = await makeBusyboxRootfs();
  archive = await buildOciArchive(rootfs, [
    { name: IMAGE, cmd: ['sh'] },
    { name: 'edgebox.test/pause:1', cmd: ['sleep', '2147483647'] },
  ]);
  await rm(rootfs, { recursive: true, force: true });
  containerd = await startContainerd({
    guestImageDir: image.dir,
    pauseImage: 'edgebox.test/pause:1',
  });
  await containerd.ctr(['-n', 'k8s.io', 'image', 'import', archive]);
  cri = new CriClient(containerd.address);
}, VM_TIMEOUT);

afterAll(async () => {
  cri?.close();
  await containerd?.stop();
  await rm(archive, { force: true });
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
});
