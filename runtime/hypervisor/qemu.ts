import { join } from 'node:path';
import { supervisedCommand, type ProcessTracker } from '../process/tracker.ts';
import { ConsoleLog } from './console-log.ts';
import { VsockCidInUseError, type Hypervisor, type VmHandle, type VmSpec } from './hypervisor.ts';
import { QmpClient } from './qmp.ts';
import { hostTscKhz } from './tsc.ts';

export const QEMU_BINARY = 'qemu-system-x86_64';

/** How long terminate() lets QEMU act on `quit` before killing it. */
const QUIT_GRACE_MS = 2000;

/** What QEMU says when the kernel refuses the guest CID (vhost-vsock's EADDRINUSE). */
const CID_IN_USE = /unable to set guest cid: Address already in use/;

/**
 * QEMU's seccomp filter: beyond its default deny list, no obsolete system
 * calls, no set*id (privileges are dropped before QEMU runs), no fork or exec,
 * no changing scheduling or CPU affinity.
 */
export const QEMU_SANDBOX =
  'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

/** QEMU splits option values at commas; a literal comma is written twice. */
function optionValue(text: string): string {
  return text.replaceAll(',', ',,');
}

/**
 * QEMU's command line for a sandbox: the microvm machine (no PCI bus, no
 * firmware to run, virtio-mmio devices), memory in a shareable memfd because
 * virtiofsd maps guest memory, the console on stdout (the host caps what it
 * keeps of it), QMP on a socket, a seccomp filter, and a NIC only when the
 * pod has a network (each device is code a hostile guest can talk to).
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
    ['-chardev', 'stdio,id=console,signal=off'],
    ['-serial', 'chardev:console'],
    ['-qmp', `unix:${optionValue(join(spec.runDir, 'qmp.sock'))},server=on,wait=off`],
    ['-sandbox', QEMU_SANDBOX],
  ];
  if (spec.vsockGuestCid === undefined) {
    options.push(
      ['-device', 'virtio-serial-device,max_ports=2'],
      ['-chardev', `socket,id=agent,path=${optionValue(spec.agentSocketPath)},server=on,wait=off`],
      ['-device', `virtserialport,chardev=agent,name=${spec.agentPortName}`],
    );
  } else {
    // virtio-mmio flavour (microvm has no PCI bus); the host kernel's vhost_vsock carries it.
    options.push(['-device', `vhost-vsock-device,guest-cid=${spec.vsockGuestCid}`]);
  }
  spec.fileSystems.forEach((fs, i) => {
    options.push(
      ['-chardev', `socket,id=fs${i},path=${optionValue(fs.socketPath)}`],
      ['-device', `vhost-user-fs-device,chardev=fs${i},tag=${fs.tag}`],
    );
  });
  if (spec.podNetwork) {
    const { tapName, mac } = spec.podNetwork;
    options.push(
      ['-netdev', `tap,id=net0,ifname=${optionValue(tapName)},script=no,downscript=no`],
      ['-device', `virtio-net-device,netdev=net0,mac=${mac}`],
    );
  } else if (spec.isolatedNetwork) {
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

export class QemuHypervisor implements Hypervisor {
  readonly name = 'qemu';
  readonly #binary: string;

  constructor(binary = QEMU_BINARY) {
    this.#binary = binary;
  }

  async start(spec: VmSpec, processes: ProcessTracker): Promise<VmHandle> {
    const tscKhz = spec.accel === 'tcg' ? await hostTscKhz() : undefined;
    const startedAt = performance.now();
    let stderr = '';
    const consoleLog = new ConsoleLog(spec.consoleLogPath);
    let consoleEnded: Promise<void> = Promise.resolve();
    // Readers attach at spawn: a QEMU that exits at once (say a vsock CID in use) is
    // otherwise drained by Node before anyone reads why.
    // In the pod's network namespace, where its tap is: nsenter (as root, to enter it) execs
    // setpriv, which drops to the VMM's ids and execs QEMU, so the pid is QEMU's and QEMU
    // opens the tap (made for those ids) unprivileged.
    const qemuArgv = qemuArgs(spec, tscKhz);
    const dropped = supervisedCommand(this.#binary, qemuArgv, spec.runAs);
    const [command, args, runAs] = spec.podNetwork
      ? [
          'nsenter',
          [`--net=${spec.podNetwork.netnsPath}`, '--', dropped.command, ...dropped.args],
          undefined,
        ]
      : [this.#binary, qemuArgv, spec.runAs];
    const spawned = processes.spawn('qemu', command, args, runAs ? { runAs } : {}, (child) => {
      child.stderr?.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-4096);
      });
      consoleEnded = new Promise<void>((resolve) => {
        child.stdout?.on('data', (chunk: Buffer) => consoleLog.write(chunk));
        child.stdout?.once('close', () => void consoleLog.close().then(resolve));
      });
    });
    const qemu = await spawned.catch(async (err: unknown) => {
      await consoleLog.close();
      throw err;
    });
    const diagnostics = async (): Promise<string> => {
      // Once QEMU has exited, its last words may still be in the pipe.
      if (qemu.exit) await consoleEnded;
      const parts = [];
      if (stderr.trim()) parts.push(`qemu: ${stderr.trim()}`);
      const console = consoleLog.tail(15);
      if (console) parts.push(`guest console (last lines):\n${console}`);
      return parts.join('\n');
    };
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(join(spec.runDir, 'qmp.sock'), 15_000, () => !qemu.exit);
    } catch (err) {
      const message = `QEMU for sandbox ${spec.id} did not start: ${(err as Error).message}\n${await diagnostics()}`;
      if (spec.vsockGuestCid !== undefined && CID_IN_USE.test(stderr)) {
        throw new VsockCidInUseError(spec.vsockGuestCid, message, { cause: err });
      }
      throw new Error(message, { cause: err });
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
      async pause() {
        await qmp.execute('stop');
      },
      async resume() {
        await qmp.execute('cont');
      },
      async terminate() {
        if (qemu.exit) return;
        // The kill is armed first: a QEMU stuck (say on a vhost-user reply) never answers quit.
        const timer = setTimeout(() => qemu.child.kill('SIGKILL'), QUIT_GRACE_MS);
        void qmp.execute('quit').catch(() => undefined);
        await qemu.exited;
        clearTimeout(timer);
      },
    };
  }
}
