import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProcessTracker } from '../process/tracker.ts';
import type { Hypervisor, VmHandle, VmSpec } from './hypervisor.ts';
import { QmpClient } from './qmp.ts';
import { hostTscKhz } from './tsc.ts';

export const QEMU_BINARY = 'qemu-system-x86_64';

/**
 * QEMU's command line for a sandbox: the microvm machine (no PCI bus, no
 * firmware to run, virtio-mmio devices), memory in a shareable memfd because
 * virtiofsd maps guest memory, the console to a log file, QMP on a socket.
 */
export function qemuArgs(spec: VmSpec, tscKhz: number | undefined): string[] {
  const machine = [
    'microvm',
    'x-option-roms=off',
    'rtc=on',
    'memory-backend=mem',
    // VFIO devices need a PCI bus; microvm has one only when asked.
    ...(spec.devices.length > 0 ? ['pcie=on'] : []),
  ].join(',');
  const kernelArgs = [...spec.kernelArgs];
  if (spec.accel === 'tcg') {
    if (tscKhz === undefined) throw new Error('TCG needs the host TSC frequency');
    // Without these an emulated microvm guest hangs calibrating its TSC.
    kernelArgs.push(`tsc_early_khz=${tscKhz}`, 'tsc=reliable', 'lapic=notscdeadline');
  }
  // Option/value pairs, one device or setting per line.
  const options: [string, string][] = [
    ['-name', `edgebox-${spec.id}`],
    ['-M', machine],
    ['-accel', spec.accel],
    ['-cpu', spec.accel === 'kvm' ? 'host' : 'max'],
    ['-smp', String(spec.cpus)],
    ['-m', `${spec.memoryMiB}M`],
    ['-object', `memory-backend-memfd,id=mem,size=${spec.memoryMiB}M,share=on`],
    ['-global', 'virtio-mmio.force-legacy=false'],
    ['-display', 'none'],
    ['-kernel', spec.kernelPath],
    ['-initrd', spec.initramfsPath],
    ['-append', kernelArgs.join(' ')],
    ['-chardev', `file,id=console,path=${spec.consoleLogPath}`],
    ['-serial', 'chardev:console'],
    ['-qmp', `unix:${join(spec.runDir, 'qmp.sock')},server=on,wait=off`],
    ['-device', 'virtio-serial-device,max_ports=2'],
    ['-chardev', `socket,id=agent,path=${spec.agentSocketPath},server=on,wait=off`],
    ['-device', `virtserialport,chardev=agent,name=${spec.agentPortName}`],
  ];
  spec.fileSystems.forEach((fs, i) => {
    options.push(
      ['-chardev', `socket,id=fs${i},path=${fs.socketPath}`],
      ['-device', `vhost-user-fs-device,chardev=fs${i},tag=${fs.tag}`],
    );
  });
  if (spec.isolatedNetwork) {
    // restrict=on: the user-mode stack forwards nothing to the host or beyond.
    options.push(
      ['-netdev', 'user,id=net0,restrict=on'],
      ['-device', 'virtio-net-device,netdev=net0'],
    );
  }
  for (const device of spec.devices)
    options.push(['-device', `vfio-pci,host=${device.hostAddress}`]);
  const args = ['-nodefaults', '-no-user-config', '-no-reboot', ...options.flat()];
  return args;
}

async function tail(path: string, lines: number): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export class QemuHypervisor implements Hypervisor {
  readonly name = 'qemu';
  readonly #binary: string;

  constructor(binary = QEMU_BINARY) {
    this.#binary = binary;
  }

  async start(spec: VmSpec, processes: ProcessTracker): Promise<VmHandle> {
    const tscKhz = spec.accel === 'tcg' ? await hostTscKhz() : undefined;
    const startedAt = performance.now();
    const qemu = await processes.spawn('qemu', this.#binary, qemuArgs(spec, tscKhz));
    let stderr = '';
    qemu.child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4096);
    });
    qemu.child.stdout?.resume();
    const diagnostics = async (): Promise<string> => {
      const parts = [];
      if (stderr.trim()) parts.push(`qemu: ${stderr.trim()}`);
      const console = await tail(spec.consoleLogPath, 15);
      if (console) parts.push(`guest console (last lines):\n${console}`);
      return parts.join('\n');
    };
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(join(spec.runDir, 'qmp.sock'), 15_000, () => !qemu.exit);
    } catch (err) {
      throw new Error(
        `QEMU for sandbox ${spec.id} did not start: ${(err as Error).message}\n${await diagnostics()}`,
        { cause: err },
      );
    }
    const controlReadyAt = performance.now();
    void qemu.exited.then(() => qmp.close());
    return {
      pid: qemu.pid,
      startedAt,
      controlReadyAt,
      exited: qemu.exited,
      diagnostics,
      async status() {
        const result = (await qmp.execute('query-status')) as { status?: string };
        return result.status ?? 'unknown';
      },
      async terminate() {
        if (qemu.exit) return;
        await qmp.execute('quit').catch(() => undefined);
        const timer = setTimeout(() => qemu.child.kill('SIGKILL'), 2000);
        await qemu.exited;
        clearTimeout(timer);
      },
    };
  }
}
