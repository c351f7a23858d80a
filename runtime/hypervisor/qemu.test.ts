import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProcessTracker } from '../process/tracker.ts';
import { MAX_CONSOLE_LOG_BYTES } from './console-log.ts';
import { VsockCidInUseError, type VmSpec } from './hypervisor.ts';
import { QemuHypervisor, qemuArgs } from './qemu.ts';
import { hostTscKhz } from './tsc.ts';

const spec: VmSpec = {
  id: 'p1',
  runDir: '/run/edgebox/sandboxes/p1',
  kernelPath: '/img/vmlinux',
  initramfsPath: '/img/initramfs.cpio.zst',
  kernelArgs: ['console=ttyS0', 'rdinit=/init'],
  memoryMiB: 512,
  cpus: 2,
  accel: 'tcg',
  fileSystems: [{ tag: 'share', socketPath: '/run/x/virtiofsd.sock' }],
  agentSocketPath: '/run/x/agent.sock',
  agentPortName: 'org.edgebox.agent.0',
  isolatedNetwork: true,
  devices: [],
  consoleLogPath: '/run/x/console.log',
};

function option(args: string[], name: string): string[] {
  return args.flatMap((a, i) => (a === name ? [args[i + 1] ?? ''] : []));
}

/** A stand-in QEMU executable (`script`) in a fresh run directory, with a tracker and spec for it. */
async function fakeQemu(script: string) {
  const dir = await mkdtemp(join(tmpdir(), 'edgebox-fake-qemu-'));
  const fake = join(dir, 'qemu');
  await writeFile(fake, script);
  await chmod(fake, 0o755);
  const processes = new ProcessTracker(dir);
  const runSpec = { ...spec, runDir: dir, consoleLogPath: join(dir, 'console.log') };
  return { dir, fake, processes, runSpec };
}

describe('QEMU command line', () => {
  it('boots microvm under TCG with the TSC arguments and shared memfd memory', () => {
    const args = qemuArgs(spec, 2_500_000);
    expect(option(args, '-M')[0]).toMatch(/^microvm,.*memory-backend=mem/);
    expect(option(args, '-accel')).toEqual(['tcg']);
    expect(option(args, '-append')[0]).toBe(
      'console=ttyS0 rdinit=/init tsc_early_khz=2500000 tsc=reliable lapic=notscdeadline',
    );
    expect(option(args, '-object')[0]).toContain('memory-backend-memfd,id=mem,size=512M,share=on');
    expect(option(args, '-device')).toEqual([
      'virtio-serial-device,max_ports=2',
      'virtserialport,chardev=agent,name=org.edgebox.agent.0',
      'vhost-user-fs-device,chardev=fs0,tag=share',
      'virtio-net-device,netdev=net0',
    ]);
    expect(option(args, '-netdev')).toEqual(['user,id=net0,restrict=on']);
    expect(option(args, '-chardev')[0]).toBe('stdio,id=console,signal=off');
    expect(args).toContain('-no-reboot');
    expect(option(args, '-sandbox')).toEqual([
      'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny',
    ]);
  });

  it('uses the host CPU and no TSC hints under KVM, and a PCI bus for VFIO devices', () => {
    const args = qemuArgs(
      { ...spec, accel: 'kvm', devices: [{ kind: 'vfio', hostAddress: '0000:3b:00.2' }] },
      undefined,
    );
    expect(option(args, '-cpu')).toEqual(['host']);
    expect(option(args, '-append')[0]).not.toContain('tsc_early_khz');
    expect(option(args, '-M')[0]).toContain('pcie=on');
    expect(option(args, '-device')).toContain('vfio-pci,host=0000:3b:00.2');
  });

  it('gives a pod without a network no NIC and no user-mode network stack', () => {
    const args = qemuArgs({ ...spec, isolatedNetwork: false }, 1);
    expect(option(args, '-device').filter((d) => d.includes('net'))).toEqual([]);
    expect(option(args, '-netdev')).toEqual([]);
  });

  it('gives the agent a vhost-vsock device instead of the serial port when the channel is vsock', () => {
    const args = qemuArgs({ ...spec, vsockGuestCid: 7 }, 1);
    expect(option(args, '-device')).toEqual([
      'vhost-vsock-device,guest-cid=7',
      'vhost-user-fs-device,chardev=fs0,tag=share',
      'virtio-net-device,netdev=net0',
    ]);
    expect(option(args, '-chardev').filter((c) => c.includes('id=agent'))).toEqual([]);
    // The serial channel keeps its device and socket, and no vsock device.
    const serial = qemuArgs(spec, 1);
    expect(option(serial, '-device').some((d) => d.startsWith('vhost-vsock'))).toBe(false);
    expect(option(serial, '-chardev')).toContain(
      'socket,id=agent,path=/run/x/agent.sock,server=on,wait=off',
    );
  });

  it('reports a guest CID another VM holds as VsockCidInUseError', async () => {
    // What QEMU prints when vhost_vsock refuses the CID (EADDRINUSE), then exits at once.
    const { dir, fake, processes, runSpec } = await fakeQemu(
      `#!/bin/sh
echo "qemu-system-x86_64: -device vhost-vsock-device,guest-cid=9: vhost-vsock: unable to set guest cid: Address already in use" >&2
exit 1
`,
    );
    const vm = new QemuHypervisor(fake).start({ ...runSpec, vsockGuestCid: 9 }, processes);
    await expect(vm).rejects.toBeInstanceOf(VsockCidInUseError);
    await expect(vm).rejects.toMatchObject({
      cid: 9,
      message: expect.stringMatching(/did not start: .*\n.*unable to set guest cid/s),
    });
    await processes.stopAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps commas in paths from turning into QEMU options', () => {
    const args = qemuArgs({ ...spec, agentSocketPath: '/run/a,server=off/agent.sock' }, 1);
    expect(option(args, '-chardev')).toContain(
      'socket,id=agent,path=/run/a,,server=off/agent.sock,server=on,wait=off',
    );
  });

  it('caps a flooding guest console and kills a QEMU that ignores quit', async () => {
    // Stands in for a QEMU whose guest prints without end and whose main loop then hangs.
    const { dir, fake, processes, runSpec } = await fakeQemu(
      `#!/usr/bin/env node
const net = require('node:net');
const qmp = process.argv[process.argv.indexOf('-qmp') + 1].replace(/^unix:/, '').split(',')[0];
const line = 'y'.repeat(1023) + '\\n';
process.stdout.write(line.repeat(3 * 1024) + 'last words\\n');
process.on('SIGTERM', () => undefined);
net.createServer((s) => {
  s.write('{"QMP": {}}\\n');
  s.on('data', (d) => { if (String(d).includes('qmp_capabilities')) s.write('{"return": {}, "id": 1}\\n'); });
}).listen(qmp);
`,
    );
    const vm = await new QemuHypervisor(fake).start(runSpec, processes);
    await vm.terminate();
    expect((await vm.exited).signal).toBe('SIGKILL');
    expect(await vm.diagnostics()).toMatch(/last words$/);
    expect((await vm.diagnostics()).length).toBeLessThan(20 * 1024);
    const log = await readFile(join(dir, 'console.log'));
    expect(log.length).toBeLessThan(MAX_CONSOLE_LOG_BYTES + 1024);
    await processes.stopAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the host TSC rate from cpuinfo', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'edgebox-tsc-'));
    const path = join(dir, 'cpuinfo');
    await writeFile(path, 'processor\t: 0\ncpu MHz\t\t: 2499.998\nflags\t\t: tsc\n');
    expect(await hostTscKhz(path)).toBe(2_499_998);
    await rm(dir, { recursive: true });
  });
});
