import type { ProcessTracker } from '../process/tracker.ts';

export type Accelerator = 'kvm' | 'tcg';

/** A PCI device on the host handed to the guest whole (SR-IOV VF), by its address. */
export interface VfioDevice {
  kind: 'vfio';
  /** PCI address on the host, e.g. 0000:3b:00.2, already bound to vfio-pci. */
  hostAddress: string;
}

/** Everything a VMM needs to start one sandbox VM; the same for every driver. */
export interface VmSpec {
  id: string;
  /** Where the VMM makes its control sockets; writable by `runAs`. */
  runDir: string;
  kernelPath: string;
  initramfsPath: string;
  kernelArgs: readonly string[];
  memoryMiB: number;
  cpus: number;
  accel: Accelerator;
  /** vhost-user-fs sockets (one virtiofsd each) and their mount tags. */
  fileSystems: readonly { tag: string; socketPath: string }[];
  /** Where the VMM exposes the virtio-serial agent channel: a unix socket the host connects to. */
  agentSocketPath: string;
  agentPortName: string;
  /**
   * Set: the agent channel is vsock instead (a vhost-vsock device with this
   * guest CID, the agent listening in the guest) and the serial port is left out.
   */
  vsockGuestCid?: number;
  /**
   * Guest NIC on a user-mode stack that reaches nothing. Off for a pod with no
   * network: the guest then has loopback only, and no NIC emulation or libslirp
   * to attack.
   */
  isolatedNetwork: boolean;
  /**
   * The pod's network (a shim pod whose CNI set up a network namespace): the
   * VMM runs in that namespace and the guest NIC is the tap there, with the
   * pod interface's MAC. Replaces isolatedNetwork's NIC.
   */
  podNetwork?: { netnsPath: string; tapName: string; mac: string };
  /** The unprivileged host ids the VMM runs as; it runs as the runtime's when unset (VFIO). */
  runAs?: { uid: number; gid: number; groups?: readonly number[] };
  devices: readonly VfioDevice[];
  consoleLogPath: string;
}

/** The VMM could not take the guest CID: another VM on this host has it. */
export class VsockCidInUseError extends Error {
  readonly cid: number;
  constructor(cid: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VsockCidInUseError';
    this.cid = cid;
  }
}

export interface VmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running VM. Its process is owned by the ProcessTracker given to start(). */
export interface VmHandle {
  readonly pid: number;
  /** Monotonic ms when the VMM process was started and when its control socket answered. */
  readonly startedAt: number;
  readonly controlReadyAt: number;
  /** Resolves when the VMM process has exited and been reaped. */
  readonly exited: Promise<VmExit>;
  /** The VMM's view of the guest (e.g. "running", "paused", "shutdown"). */
  status(): Promise<string>;
  /** What the VMM and the guest console said last, for error messages. */
  diagnostics(): Promise<string>;
  /** Stops the guest's vCPUs (and its clock) until resume(); a VMM without it leaves it out. */
  pause?(): Promise<void>;
  resume?(): Promise<void>;
  /** Ends the VM at once (the guest gets no say). */
  terminate(): Promise<void>;
}

/**
 * One implementation per VMM (QEMU today): a new VMM is one new file
 * implementing this, handed to Sandbox.create as its hypervisor.
 */
export interface Hypervisor {
  readonly name: string;
  start(spec: VmSpec, processes: ProcessTracker): Promise<VmHandle>;
}
