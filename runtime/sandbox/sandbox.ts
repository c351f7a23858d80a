import { chmod, chown, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Duplex } from 'node:stream';
import { AgentChannel, type AgentEvent } from '../agent-client/channel.ts';
import {
  ChannelUnavailableError,
  selectAgentChannel,
  type SelectedChannel,
  type VsockProbe,
} from '../agent-client/channel-select.ts';
import { connectThroughSocat, vsockConnectAddress } from '../agent-client/socat-relay.ts';
import { chooseAccelerator } from '../hypervisor/accel.ts';
import type { Hypervisor, VmHandle, VmSpec } from '../hypervisor/hypervisor.ts';
import { QemuHypervisor } from '../hypervisor/qemu.ts';
import { defaultCacheDir, defaultSandboxRunRoot, ensureRunRoot } from '../paths.ts';
import { formatIdentity, processStartTime } from '../process/identity.ts';
import { ProcessTracker, type RunAs } from '../process/tracker.ts';
import {
  AGENT_PORT_NAME,
  CHANNEL_BOOT_ARG_PREFIX,
  GUEST_RUNTIME_DIR,
  SHARE_TAG,
  VSOCK_AGENT_PORT,
} from '../protocol/guest-layout.ts';
import {
  MAX_STDIN_CHUNK_BYTES,
  resourceLimitsSchema,
  type AgentReady,
  type ContainerStats,
  type ProcessSpec,
  type ResourceLimits,
} from '../protocol/messages.ts';
import { SandboxDisk } from '../sharing/disk.ts';
import type { MountPoint } from '../sharing/mount-points.ts';
import {
  ID_SLOT_DIR,
  MAX_ID_SLOTS,
  idMapForSlot,
  mappedRoot,
  vmmId,
  type IdMap,
} from '../sharing/id-map.ts';
import { SandboxShare } from '../sharing/share.ts';
import { startVirtiofsd } from '../sharing/virtiofsd.ts';
import { CGROUP_RECORD_FILE, DEFAULT_CGROUP_PARENT, HostCgroup } from './host-cgroup.ts';
import {
  containerSpecSchema,
  execSpecSchema,
  sandboxConfigSchema,
  type ContainerSpec,
  type ResolvedContainerSpec,
  type ExecSpec,
  type ResolvedSandboxConfig,
  type SandboxConfig,
} from './config.ts';
import {
  claimNumber,
  startWithVsockCid,
  type NumberClaim,
  type VsockCidLease,
} from './vsock-cid.ts';
import { PODNET_BOOT_ARG_PREFIX } from '../protocol/guest-layout.ts';

/** The guest's process spec of a container's or an exec's host-side spec. */
function processOf(spec: {
  args: string[];
  env: string[];
  cwd: string;
  user: ProcessSpec['user'];
  rlimits?: ProcessSpec['rlimits'];
  noNewPrivileges?: boolean;
  stdin: boolean;
  terminal?: boolean;
}): ProcessSpec {
  return {
    args: spec.args,
    env: spec.env,
    cwd: spec.cwd,
    user: spec.user,
    ...(spec.rlimits ? { rlimits: spec.rlimits } : {}),
    ...(spec.noNewPrivileges ? { noNewPrivileges: true } : {}),
    ...(spec.stdin ? { stdin: true } : {}),
    ...(spec.terminal ? { terminal: true } : {}),
  };
}

/** Where a container's volumes land: a pod volume is a directory, a host path what it is. */
async function mountPointsOf(volumes: ResolvedContainerSpec['volumes']): Promise<MountPoint[]> {
  return Promise.all(
    volumes.map(async (volume) => ({
      path: volume.containerPath,
      directory:
        'hostPath' in volume
          ? (await stat(volume.hostPath).catch(() => undefined))?.isDirectory() !== false
          : true,
    })),
  );
}

/**
 * `edgebox.podnet=ADDRESS/PREFIX,GATEWAY,MTU[,DEST@VIA|DEST]...` for /init to
 * set eth0 up with: the pod interface's address, default gateway and MTU, then
 * CNI's other routes (through a gateway, or straight on the link).
 */
function podNetworkBootArg(network: NonNullable<ResolvedSandboxConfig['podNetwork']>): string {
  const routes = network.routes.map((r) => (r.via ? `${r.dst}@${r.via}` : r.dst));
  return `${PODNET_BOOT_ARG_PREFIX}${[network.address, network.gateway ?? '', network.mtu, ...routes].join(',')}`;
}

export interface ExitStatus {
  exitCode: number;
  /** Set when the process died of a signal (exitCode is then 128+signal). */
  signal?: number;
}

export type SandboxEvent =
  | { type: 'container-started'; containerId: string; execId?: string; pid: number }
  | { type: 'container-exited'; containerId: string; execId?: string; status: ExitStatus }
  /** The guest's OOM killer killed a process of the container; comes before that exit. */
  | { type: 'container-oom'; containerId: string }
  | {
      type: 'output';
      containerId: string;
      execId?: string;
      stream: 'stdout' | 'stderr';
      data: Buffer;
    }
  | { type: 'agent-log'; level: string; message: string }
  | { type: 'sandbox-failed'; error: SandboxError }
  | { type: 'sandbox-stopped' };

/** Monotonic milliseconds (performance.now()) at each start-up phase. */
export interface StartupTimings {
  begin: number;
  virtiofsdSpawned: number;
  virtiofsdReady: number;
  vmmSpawned: number;
  vmmReady: number;
  agentReady: number;
  /** Guest clock (s since kernel start) when /init ran and when the agent said hello. */
  guestInitSeconds: number;
  guestAgentReadySeconds: number;
}

/** A sandbox that failed: which one, and why (VM died, guest misbehaved, start-up failed). */
export class SandboxError extends Error {
  readonly sandboxId: string;
  constructor(sandboxId: string, message: string, options?: { cause?: unknown }) {
    super(`sandbox ${sandboxId}: ${message}`, options);
    this.name = 'SandboxError';
    this.sandboxId = sandboxId;
  }
}

type SandboxState = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

interface ProcessRecord {
  status?: ExitStatus;
  waiters: { resolve(s: ExitStatus): void; reject(e: Error): void }[];
}

function processKey(containerId: string, execId?: string): string {
  return execId === undefined ? containerId : `${containerId}/${execId}`;
}

/**
 * One pod: one VM with its own kernel, one virtiofsd, and the containers the
 * guest agent runs. Every host resource it takes (run directory, processes,
 * mounts) is released by stop() or destroy(), and also when the VM dies or
 * the guest breaks the protocol, in which case the sandbox is failed and
 * every pending call rejects with a SandboxError saying why.
 */
export class Sandbox {
  readonly id: string;
  readonly runDir: string;
  readonly config: ResolvedSandboxConfig;
  readonly timings: StartupTimings;
  readonly agent: AgentReady;
  readonly accel: 'kvm' | 'tcg';
  /** The agent channel in use, and the guest's vsock CID when it is vsock. */
  readonly channel: 'vsock' | 'serial';
  readonly vsockCid: number | undefined;
  readonly #cidLease: VsockCidLease | undefined;
  /** Host ids the guest's ids are mapped to (its root is hostBase), one range per sandbox. */
  readonly idMap: IdMap;
  readonly #idSlot: NumberClaim;
  /** The host cgroup QEMU, virtiofsd and the relays run in (config.cgroupPath). */
  readonly hostCgroup: HostCgroup;
  readonly #processes: ProcessTracker;
  readonly #share: SandboxShare;
  readonly #disk: SandboxDisk;
  readonly #vm: VmHandle;
  readonly #channel: AgentChannel;
  readonly #handlers = new Set<(event: SandboxEvent) => void>();
  readonly #records = new Map<string, ProcessRecord>();
  readonly #containers = new Set<string>();
  #state: SandboxState = 'running';
  #failure: SandboxError | undefined;
  #cleanup: Promise<void> | undefined;

  private constructor(parts: {
    config: ResolvedSandboxConfig;
    runDir: string;
    processes: ProcessTracker;
    share: SandboxShare;
    disk: SandboxDisk;
    vm: VmHandle;
    channel: AgentChannel;
    timings: StartupTimings;
    agent: AgentReady;
    accel: 'kvm' | 'tcg';
    channelKind: 'vsock' | 'serial';
    vsockCid: VsockCidLease | undefined;
    idSlot: NumberClaim;
    idMap: IdMap;
    hostCgroup: HostCgroup;
  }) {
    this.config = parts.config;
    this.id = parts.config.id;
    this.runDir = parts.runDir;
    this.#processes = parts.processes;
    this.#share = parts.share;
    this.#disk = parts.disk;
    this.#vm = parts.vm;
    this.#channel = parts.channel;
    this.timings = parts.timings;
    this.agent = parts.agent;
    this.accel = parts.accel;
    this.channel = parts.channelKind;
    this.vsockCid = parts.vsockCid?.cid;
    this.#cidLease = parts.vsockCid;
    this.#idSlot = parts.idSlot;
    this.idMap = parts.idMap;
    this.hostCgroup = parts.hostCgroup;
    this.#channel.onEvent((event) => this.#onAgentEvent(event));
    this.#channel.onClose((err) => {
      if (this.#state !== 'running') return;
      // A dying VM closes the channel first; let its exit, the real cause, be the reason.
      const grace = new Promise<'channel'>((r) => setTimeout(() => r('channel'), 2000).unref());
      void Promise.race([this.#vm.exited.then(() => 'vm' as const), grace]).then((first) => {
        if (first === 'channel') this.#fail(`guest agent channel failed: ${err.message}`, err);
      });
    });
    void this.#vm.exited.then(async (exit) => {
      if (this.#state !== 'running') return;
      const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
      const diagnostics = await this.#vm.diagnostics();
      this.#fail(
        `the VM stopped unexpectedly: QEMU ${how}${diagnostics ? `\n${diagnostics}` : ''}`,
      );
    });
  }

  /** Boots the VM and waits for the guest agent. On any failure, everything started is undone. */
  static async create(
    input: SandboxConfig,
    deps: {
      hypervisor?: Hypervisor;
      probeVsock?: () => Promise<VsockProbe>;
      /**
       * The id slot, claimed beforehand (claimIdSlot) by a caller that needs the
       * VMM's ids first: the shim makes the pod's tap theirs. The sandbox owns it
       * from here and gives it back on failure or teardown.
       */
      idSlot?: NumberClaim;
    } = {},
  ): Promise<Sandbox> {
    try {
      return await Sandbox.#create(input, deps);
    } catch (err) {
      await deps.idSlot?.release().catch(() => undefined);
      throw err;
    }
  }

  static async #create(
    input: SandboxConfig,
    deps: Parameters<typeof Sandbox.create>[1] & object,
  ): Promise<Sandbox> {
    const config = sandboxConfigSchema.parse(input);
    const begin = performance.now();
    let selected: SelectedChannel;
    try {
      selected = await selectAgentChannel(config.channel, deps.probeVsock);
    } catch (err) {
      if (!(err instanceof ChannelUnavailableError)) throw err;
      throw new SandboxError(config.id, err.message, { cause: err });
    }
    const runRoot = config.runRoot ?? defaultSandboxRunRoot();
    const runDir = join(runRoot, config.id);
    // Searchable, not listable: the guest's ids (virtiofsd) and the VMM's reach their own
    // directories inside by name.
    await ensureRunRoot(runRoot);
    await chmod(runRoot, 0o711);
    try {
      await mkdir(runDir, { mode: 0o711 });
    } catch (err) {
      throw new SandboxError(
        config.id,
        `cannot create run directory ${runDir}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const unreachable = await firstUnsearchableDir(runDir);
    if (unreachable) {
      await rm(runDir, { recursive: true, force: true });
      throw new SandboxError(
        config.id,
        `run directory ${runDir} is below ${unreachable}, which other users cannot pass through: virtiofsd (as the guest's mapped ids) and QEMU (unprivileged) need to (chmod o+x ${unreachable}, or choose another run root)`,
      );
    }
    let idSlot: NumberClaim | undefined;
    let cgroup: HostCgroup;
    try {
      idSlot = deps.idSlot ?? (await claimIdSlot(runRoot));
      cgroup = await HostCgroup.create(
        config.cgroupPath ?? `${DEFAULT_CGROUP_PARENT}/${config.id}`,
      );
      // For gc and `shim delete`, should this runtime die before removing it.
      await writeFile(join(runDir, CGROUP_RECORD_FILE), JSON.stringify(cgroup.record));
    } catch (err) {
      await idSlot?.release();
      await rm(runDir, { recursive: true, force: true });
      throw new SandboxError(config.id, (err as Error).message, { cause: err });
    }
    // QEMU, virtiofsd and the relays start in the sandbox's cgroup.
    const processes = new ProcessTracker(runDir, cgroup.procsFiles);
    const share = new SandboxShare(join(runDir, 'share'));
    const idMap = idMapForSlot(idSlot.value);
    const disk = new SandboxDisk(
      join(config.diskDir ?? runDir, `${config.id}.disk.img`),
      join(runDir, 'disk'),
      mappedRoot(idMap),
    );
    let vm: VmHandle | undefined;
    let channel: AgentChannel | undefined;
    let cid: VsockCidLease | undefined;
    try {
      const accel = await chooseAccelerator(
        config.accel,
        config.image,
        config.cacheDir ?? defaultCacheDir(),
      );
      // Who started it, so `sandbox gc` can tell a live runtime from a dead one whose pid came back.
      const ownerStart = await processStartTime(process.pid);
      if (ownerStart !== undefined)
        await writeFile(
          join(runDir, 'owner'),
          formatIdentity({ pid: process.pid, startTime: ownerStart }),
        );
      await writeState(runDir, {
        id: config.id,
        state: 'starting',
        accel,
        channel: selected.kind,
        diskImage: disk.imagePath,
      });
      await share.prepare();
      await share.bind(config.image.runtimePath, GUEST_RUNTIME_DIR, true);
      await disk.create(config.diskMiB);
      // VFIO needs the VMM to open /dev/vfio/* as root; everywhere else it runs unprivileged
      // (in a pod's netns, on a tap made for these ids: vmmIdsOfSlot).
      const runAs =
        config.devices.length === 0 ? await vmmIdentity(idSlot.value, accel) : undefined;
      if (runAs && config.podNetwork) await assertTunOpenToAll();
      const vmmDir = join(runDir, 'vmm');
      await mkdir(vmmDir, { mode: 0o700 });
      if (runAs) await chown(vmmDir, runAs.uid, runAs.gid);

      const virtiofsdSpawned = performance.now();
      const fs = await startVirtiofsd(processes, {
        sourceDir: share.dir,
        workDir: runDir,
        idMap,
        ...(config.virtiofsdFdLimit ? { fdLimit: config.virtiofsdFdLimit } : {}),
        ...(runAs ? { clientUid: runAs.uid } : {}),
      });
      const virtiofsdReady = performance.now();

      const hypervisor = deps.hypervisor ?? new QemuHypervisor();
      const spec: VmSpec = {
        id: config.id,
        runDir: vmmDir,
        kernelPath: config.image.kernelPath,
        initramfsPath: config.image.initramfsPath,
        kernelArgs: [
          'console=ttyS0',
          'rdinit=/init',
          'panic=-1',
          'quiet',
          `${CHANNEL_BOOT_ARG_PREFIX}${selected.kind}`,
          ...(config.podNetwork ? [podNetworkBootArg(config.podNetwork)] : []),
        ],
        memoryMiB: config.memoryMiB,
        cpus: config.cpus,
        accel,
        fileSystems: [{ tag: SHARE_TAG, socketPath: fs.socketPath }],
        agentSocketPath: join(vmmDir, 'agent.sock'),
        agentPortName: AGENT_PORT_NAME,
        isolatedNetwork: !config.podNetwork && config.network === 'isolated',
        ...(config.podNetwork
          ? {
              podNetwork: {
                netnsPath: config.podNetwork.netnsPath,
                tapName: config.podNetwork.tapName,
                mac: config.podNetwork.mac,
              },
            }
          : {}),
        ...(runAs ? { runAs } : {}),
        devices: config.devices,
        consoleLogPath: join(runDir, 'console.log'),
      };
      const vmmSpawned = performance.now();
      if (selected.kind === 'vsock') {
        const started = await startWithVsockCid(runRoot, (guestCid) =>
          hypervisor.start({ ...spec, vsockGuestCid: guestCid }, processes),
        );
        vm = started.vm;
        cid = started.cid;
      } else {
        vm = await hypervisor.start(spec, processes);
      }
      const vmmReady = performance.now();
      const running = vm;
      const vmExited = running.exited.then(async () => {
        throw new SandboxError(
          config.id,
          `the VM stopped before the guest agent was ready\n${await running.diagnostics()}`,
        );
      });
      let stream: Duplex;
      if (selected.kind === 'vsock' && cid) {
        const vmGone = new AbortController();
        void running.exited.then(() => vmGone.abort(new Error('the VM stopped')));
        stream = await Promise.race([
          connectThroughSocat({
            socatPath: selected.socatPath,
            address: vsockConnectAddress(cid.cid, VSOCK_AGENT_PORT),
            processes,
            timeoutMs: config.agentReadyTimeoutMs,
            signal: vmGone.signal,
          }),
          vmExited,
        ]);
      } else {
        stream = await connectUnix(spec.agentSocketPath);
      }
      channel = new AgentChannel(stream);
      const agent = await Promise.race([channel.waitReady(config.agentReadyTimeoutMs), vmExited]);
      const agentReady = performance.now();
      const sandbox = new Sandbox({
        config,
        runDir,
        processes,
        share,
        disk,
        vm,
        channel,
        channelKind: selected.kind,
        vsockCid: cid,
        idSlot,
        idMap,
        hostCgroup: cgroup,
        agent,
        accel,
        timings: {
          begin,
          virtiofsdSpawned,
          virtiofsdReady,
          vmmSpawned,
          vmmReady,
          agentReady,
          guestInitSeconds: agent.initUptimeSeconds,
          guestAgentReadySeconds: agent.readyUptimeSeconds,
        },
      });
      await writeState(runDir, {
        id: config.id,
        state: 'running',
        accel,
        channel: selected.kind,
        ...(cid ? { vsockCid: cid.cid } : {}),
        diskImage: disk.imagePath,
        pids: Object.fromEntries(processes.processes.map((p) => [p.name, p.pid])),
      });
      return sandbox;
    } catch (err) {
      const diagnostics = vm ? await vm.diagnostics().catch(() => '') : '';
      channel?.close();
      await releaseAll(runDir, processes, share, disk, vm, [cid, cgroup, idSlot]);
      if (err instanceof SandboxError) throw err;
      throw new SandboxError(
        config.id,
        `cannot start: ${(err as Error).message}${diagnostics ? `\n${diagnostics}` : ''}`,
        { cause: err },
      );
    }
  }

  /** Host processes of this sandbox by name (qemu, virtiofsd), for monitoring. */
  get pids(): Record<string, number> {
    return Object.fromEntries(this.#processes.processes.map((p) => [p.name, p.pid]));
  }

  /** The VMM's view of the VM (QEMU: query-status, e.g. "running"). */
  vmStatus(): Promise<string> {
    this.#assertRunning();
    return this.#vm.status();
  }

  /** Freezes the whole VM (every container of the pod) until resumeVm(). */
  async pauseVm(): Promise<void> {
    this.#assertRunning();
    if (!this.#vm.pause) throw new SandboxError(this.id, 'this VMM cannot pause a VM');
    await this.#call(() => this.#vm.pause!());
  }

  async resumeVm(): Promise<void> {
    this.#assertRunning();
    if (!this.#vm.resume) throw new SandboxError(this.id, 'this VMM cannot resume a VM');
    await this.#call(() => this.#vm.resume!());
  }

  get state(): SandboxState {
    return this.#state;
  }

  get failure(): SandboxError | undefined {
    return this.#failure;
  }

  /**
   * Stops reading from the guest until resumeOutput(): a consumer that cannot
   * keep up with container output holds the guest back instead of buffering.
   */
  pauseOutput(): void {
    this.#channel.pause();
  }

  resumeOutput(): void {
    this.#channel.resume();
  }

  onEvent(handler: (event: SandboxEvent) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  /**
   * Binds the rootfs and volumes into the share (pod volumes from the
   * sandbox's disk) and has the agent set up the container.
   */
  async createContainer(input: ContainerSpec): Promise<void> {
    this.#assertRunning();
    const spec = containerSpecSchema.parse(input);
    if (this.#containers.has(spec.id))
      throw new SandboxError(this.id, `container ${spec.id} already exists`);
    const base = `containers/${spec.id}`;
    const rootfs = spec.readOnlyRootfs
      ? await this.#share.bind(spec.rootfs, `${base}/rootfs`, true)
      : await this.#share.overlay(
          spec.rootfs,
          await this.#disk.layers(spec.id, spec.rootfs, await mountPointsOf(spec.volumes)),
          `${base}/rootfs`,
        );
    const mounts: { source: string; destination: string; readOnly: boolean }[] = [];
    for (const [index, volume] of spec.volumes.entries()) {
      const bind = (hostPath: string): Promise<string> =>
        this.#share.bind(hostPath, `${base}/volumes/${index}`, volume.readOnly);
      const source =
        'hostPath' in volume
          ? await bind(volume.hostPath)
          : await this.#disk.withVolume(
              {
                name: volume.podVolume,
                containerId: volume.scope === 'container' ? spec.id : undefined,
                subPath: volume.subPath,
              },
              bind,
            );
      mounts.push({ source, destination: volume.containerPath, readOnly: volume.readOnly });
    }
    const cpus = spec.resources.cpus;
    await this.#call(() =>
      this.#channel.request({
        op: 'createContainer',
        spec: {
          id: spec.id,
          ...(spec.hostname ? { hostname: spec.hostname } : {}),
          rootfs,
          process: processOf(spec),
          mounts,
          resources: {
            ...(cpus
              ? { cpuQuotaMicros: Math.round(cpus * 100_000), cpuPeriodMicros: 100_000 }
              : {}),
            ...(spec.resources.memoryBytes ? { memoryMaxBytes: spec.resources.memoryBytes } : {}),
            ...(spec.resources.pidsMax ? { pidsMax: spec.resources.pidsMax } : {}),
            ...(spec.resources.cpuWeight ? { cpuWeight: spec.resources.cpuWeight } : {}),
            ...(spec.resources.cpusetCpus ? { cpusetCpus: spec.resources.cpusetCpus } : {}),
            ...(spec.resources.cpusetMems ? { cpusetMems: spec.resources.cpusetMems } : {}),
            ...(spec.resources.swapMaxBytes !== undefined
              ? { swapMaxBytes: spec.resources.swapMaxBytes }
              : {}),
          },
        },
      }),
    );
    this.#containers.add(spec.id);
    this.#records.set(processKey(spec.id), { waiters: [] });
  }

  async startContainer(containerId: string): Promise<{ pid: number }> {
    this.#assertRunning();
    return this.#call(() => this.#channel.request({ op: 'startContainer', containerId }));
  }

  async exec(containerId: string, input: ExecSpec): Promise<{ pid: number }> {
    this.#assertRunning();
    const spec = execSpecSchema.parse(input);
    const key = processKey(containerId, spec.id);
    if (this.#records.has(key))
      throw new SandboxError(this.id, `exec ${spec.id} already exists in ${containerId}`);
    this.#records.set(key, { waiters: [] });
    return this.#call(() =>
      this.#channel.request({
        op: 'exec',
        containerId,
        execId: spec.id,
        process: processOf(spec),
      }),
    );
  }

  /**
   * Hands `data` to the stdin of a container's process (or an exec) and
   * resolves once the guest passed it on: callers send the next chunk then, so
   * a process that does not read holds back its writer, not the host's memory.
   * No timeout: a process may leave its stdin unread for as long as it likes.
   */
  async writeStdin(containerId: string, execId: string | undefined, data: Buffer): Promise<void> {
    this.#assertRunning();
    for (let at = 0; at < data.length; at += MAX_STDIN_CHUNK_BYTES) {
      const chunk = data.subarray(at, at + MAX_STDIN_CHUNK_BYTES).toString('base64');
      await this.#call(() =>
        this.#channel.request(
          { op: 'stdin', containerId, ...(execId ? { execId } : {}), data: chunk },
          { timeout: false },
        ),
      );
    }
  }

  /** Ends the stdin of a container's process (or an exec): it reads end of file. */
  async closeStdin(containerId: string, execId?: string): Promise<void> {
    this.#assertRunning();
    await this.#call(() =>
      this.#channel.request({ op: 'closeStdin', containerId, ...(execId ? { execId } : {}) }),
    );
  }

  /** Sets the window size of an exec's terminal. */
  async resizeTerminal(
    containerId: string,
    execId: string | undefined,
    size: { rows: number; cols: number },
  ): Promise<void> {
    this.#assertRunning();
    await this.#call(() =>
      this.#channel.request({
        op: 'resizeTerminal',
        containerId,
        ...(execId ? { execId } : {}),
        rows: size.rows,
        cols: size.cols,
      }),
    );
  }

  async kill(containerId: string, signal: number, execId?: string): Promise<void> {
    this.#assertRunning();
    await this.#call(() =>
      this.#channel.request({ op: 'signal', containerId, signal, ...(execId ? { execId } : {}) }),
    );
  }

  /** Resolves with the exit status of the container's process (or an exec), however long it runs. */
  wait(containerId: string, execId?: string): Promise<ExitStatus> {
    const record = this.#records.get(processKey(containerId, execId));
    if (!record) {
      return Promise.reject(
        new SandboxError(
          this.id,
          `no ${execId ? `exec ${execId} in ` : ''}container ${containerId}`,
        ),
      );
    }
    if (record.status) return Promise.resolve(record.status);
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#state !== 'running')
      return Promise.reject(new SandboxError(this.id, 'the sandbox is stopped'));
    return new Promise((resolve, reject) => record.waiters.push({ resolve, reject }));
  }

  async stats(containerId: string): Promise<ContainerStats> {
    this.#assertRunning();
    return this.#call(() => this.#channel.request({ op: 'stats', containerId }));
  }

  /** New cgroup limits for a container; fields left out keep their value. */
  async updateResources(containerId: string, limits: ResourceLimits): Promise<void> {
    this.#assertRunning();
    if (!this.#containers.has(containerId))
      throw new SandboxError(this.id, `no container ${containerId}`);
    const parsed = resourceLimitsSchema.safeParse(limits);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new SandboxError(
        this.id,
        `limits of ${containerId}: ${issue.path.join('.')}: ${issue.message}`,
      );
    }
    await this.#call(() =>
      this.#channel.request({ op: 'updateResources', containerId, resources: parsed.data }),
    );
  }

  async deleteContainer(containerId: string): Promise<void> {
    this.#assertRunning();
    await this.#call(() => this.#channel.request({ op: 'deleteContainer', containerId }));
    await this.#share.unbind(`containers/${containerId}`);
    await this.#disk.removeLayers(containerId);
    this.#containers.delete(containerId);
  }

  /**
   * Asks the agent to end every container and power off, waits up to
   * `timeoutMs` for the VM to exit, then releases everything.
   */
  async stop(timeoutMs = 10_000): Promise<void> {
    if (this.#state === 'running') {
      this.#state = 'stopping';
      await Promise.race([
        this.#channel.request({ op: 'shutdown' }).then(() => this.#vm.exited),
        new Promise((r) => setTimeout(r, timeoutMs).unref()),
      ]).catch(() => undefined);
    }
    await this.destroy();
  }

  /** Ends the VM at once and releases every host resource. Safe to call more than once. */
  destroy(): Promise<void> {
    this.#cleanup ??= (async () => {
      if (this.#state === 'running' || this.#state === 'stopping' || this.#state === 'starting') {
        this.#state = 'stopped';
      }
      this.#channel.close();
      await releaseAll(this.runDir, this.#processes, this.#share, this.#disk, this.#vm, [
        this.#cidLease,
        this.hostCgroup,
        this.#idSlot,
      ]);
      const stopped = new SandboxError(this.id, 'the sandbox was stopped');
      for (const record of this.#records.values()) {
        for (const waiter of record.waiters) waiter.reject(this.#failure ?? stopped);
        record.waiters = [];
      }
      if (!this.#failure) this.#emit({ type: 'sandbox-stopped' });
    })();
    return this.#cleanup;
  }

  #assertRunning(): void {
    if (this.#failure) throw this.#failure;
    if (this.#state !== 'running') throw new SandboxError(this.id, `the sandbox is ${this.#state}`);
  }

  /** Runs a request; once the sandbox has failed, reports that failure rather than the request's. */
  async #call<T>(request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      if (this.#failure) throw this.#failure;
      throw new SandboxError(this.id, (err as Error).message, { cause: err });
    }
  }

  #onAgentEvent(event: AgentEvent): void {
    if (event.kind === 'oom') {
      if (this.#containers.has(event.containerId))
        this.#emit({ type: 'container-oom', containerId: event.containerId });
      else
        this.#emit({
          type: 'agent-log',
          level: 'warn',
          message: `host dropped an OOM report the guest sent for ${event.containerId}, which the host did not create`,
        });
      return;
    }
    if (
      (event.kind === 'output' || event.kind === 'started') &&
      !this.#records.has(processKey(event.containerId, event.execId))
    ) {
      // Not the host's to pass on: a guest may not speak for a container nobody created.
      this.#emit({
        type: 'agent-log',
        level: 'warn',
        message: `host dropped ${event.kind === 'output' ? 'output' : 'a start'} the guest sent for ${processKey(event.containerId, event.execId)}, which the host did not create`,
      });
      return;
    }
    switch (event.kind) {
      case 'output':
        this.#emit({
          type: 'output',
          containerId: event.containerId,
          ...(event.execId ? { execId: event.execId } : {}),
          stream: event.stream,
          data: Buffer.from(event.data, 'base64'),
        });
        return;
      case 'started':
        this.#emit({
          type: 'container-started',
          containerId: event.containerId,
          ...(event.execId ? { execId: event.execId } : {}),
          pid: event.pid,
        });
        return;
      case 'exited': {
        const status: ExitStatus = {
          exitCode: event.exitCode,
          ...(event.signal ? { signal: event.signal } : {}),
        };
        const record = this.#records.get(processKey(event.containerId, event.execId));
        if (!record) {
          this.#fail(
            `guest reported the exit of unknown process ${processKey(event.containerId, event.execId)}`,
          );
          return;
        }
        record.status = status;
        for (const waiter of record.waiters) waiter.resolve(status);
        record.waiters = [];
        this.#emit({
          type: 'container-exited',
          containerId: event.containerId,
          ...(event.execId ? { execId: event.execId } : {}),
          status,
        });
        return;
      }
      case 'log':
        this.#emit({ type: 'agent-log', level: event.level, message: event.message });
        return;
      case 'ready':
        return;
    }
  }

  #fail(message: string, cause?: unknown): void {
    if (this.#failure || this.#state === 'stopped') return;
    this.#failure = new SandboxError(this.id, message, { cause });
    this.#state = 'failed';
    for (const record of this.#records.values()) {
      for (const waiter of record.waiters) waiter.reject(this.#failure);
      record.waiters = [];
    }
    this.#emit({ type: 'sandbox-failed', error: this.#failure });
    void this.destroy();
  }

  #emit(event: SandboxEvent): void {
    for (const handler of this.#handlers) handler(event);
  }
}

/** The nearest ancestor of `path` others may not search (no o+x), if any. */
async function firstUnsearchableDir(path: string): Promise<string | undefined> {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const info = await stat(dir);
    if ((info.mode & 0o001) === 0) return dir;
    if (dir === dirname(dir)) return undefined;
  }
}

const TUN_DEVICE = '/dev/net/tun';

/** Claims the lowest free id slot among the sandboxes of `runRoot` (Sandbox.create's `idSlot`). */
export function claimIdSlot(runRoot: string): Promise<NumberClaim> {
  return claimNumber(
    join(runRoot, ID_SLOT_DIR),
    { first: 0, last: MAX_ID_SLOTS - 1 },
    'sandbox id slot',
  );
}

/** The host uid and gid the VMM of a sandbox in `slot` runs as (say, to own its tap). */
export function vmmIdsOfSlot(slot: number): { uid: number; gid: number } {
  const id = vmmId(idMapForSlot(slot));
  return { uid: id, gid: id };
}

/**
 * An unprivileged QEMU opens /dev/net/tun to attach to the tap made for it;
 * udev's default rule makes the device 0666 (opening it grants nothing: only
 * the tap's owner, or CAP_NET_ADMIN, may attach to a tap). A host without
 * udev may have it 0600.
 */
async function assertTunOpenToAll(): Promise<void> {
  const tun = await stat(TUN_DEVICE).catch(() => undefined);
  if (!tun || (tun.mode & 0o006) !== 0o006)
    throw new Error(
      `${TUN_DEVICE} ${tun ? 'is not readable and writable by others' : 'is missing'}: the VMM of a pod network opens it unprivileged (make it 0666, as udev's default rule does)`,
    );
}

/** The VMM's unprivileged ids; under KVM it keeps the group that may open /dev/kvm. */
async function vmmIdentity(slot: number, accel: 'kvm' | 'tcg'): Promise<RunAs> {
  const kvm = accel === 'kvm' ? await stat('/dev/kvm').catch(() => undefined) : undefined;
  return { ...vmmIdsOfSlot(slot), ...(kvm ? { groups: [kvm.gid] } : {}) };
}

function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => resolve(socket));
    socket.once('error', (err) =>
      reject(new Error(`cannot connect to the agent socket ${path}: ${err.message}`)),
    );
  });
}

async function writeState(runDir: string, state: Record<string, unknown>): Promise<void> {
  await writeFile(join(runDir, 'state.json'), `${JSON.stringify(state)}\n`);
}

/**
 * Stops the VM and helpers, gives back the vsock CID, unmounts the share and
 * removes the run directory, in that order.
 */
async function releaseAll(
  runDir: string,
  processes: ProcessTracker,
  share: SandboxShare,
  disk: SandboxDisk,
  vm: VmHandle | undefined,
  claims: readonly ({ release(): Promise<void> } | undefined)[],
): Promise<void> {
  const errors: string[] = [];
  if (vm) await vm.terminate().catch((err: Error) => errors.push(err.message));
  await processes.stopAll().catch((err: Error) => errors.push(err.message));
  // Only once QEMU and virtiofsd are gone: until then the kernel holds the CID, and the ids run.
  for (const claim of claims)
    await claim?.release().catch((err: Error) => errors.push(err.message));
  await share.teardown().catch((err: Error) => errors.push(err.message));
  // The overlays on it are gone with the share.
  if (errors.length === 0) await disk.teardown().catch((err: Error) => errors.push(err.message));
  if (errors.length === 0) await rm(runDir, { recursive: true, force: true });
  else throw new Error(`cleanup of ${runDir} incomplete: ${errors.join('; ')}`);
}
