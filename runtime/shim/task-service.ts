import { lstat, mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../../src/log.ts';
import { attachPodNetwork, detachPodNetwork, type PodNetwork } from '../network/tap-endpoint.ts';
import { loadPrebuiltGuestImage, type GuestImage } from '../image/build.ts';
import {
  claimIdSlot,
  Sandbox,
  SandboxError,
  vmmIdsOfSlot,
  type SandboxEvent,
} from '../sandbox/sandbox.ts';
import type { NumberClaim } from '../sandbox/vsock-cid.ts';
import { cgroupPathFromOci } from '../sandbox/host-cgroup.ts';
import { codecFor, timestamp, type Any, type Message, type Timestamp } from './codec.ts';
import { sandboxIdFor, type ShimConfig } from './config.ts';
import type { EventSink } from './events.ts';
import {
  checkSupported,
  containerRole,
  containerSpecFromOci,
  execSpecFromOci,
  parseProcess,
  readBundleSpec,
  type ContainerRole,
  type OciSpec,
} from './oci-spec.ts';
import { containerMetrics } from './metrics.ts';
import { resourceLimitsFromUpdate } from './resource-update.ts';
import { mountRootfs, unmountRootfs, type RootfsMount } from './rootfs.ts';
import { mountRootAt, readMountInfo } from '../sharing/mountinfo.ts';
import { UnsupportedSpecError } from './spec-error.ts';
import { ProcessInput, ProcessOutput } from './stdio.ts';
import { Code, TtrpcError, type MethodHandler } from './ttrpc.ts';

export const TASK_SERVICE = 'containerd.task.v2.Task';

/** containerd's task status enum (api/types/task). */
const Status = { created: 1, running: 2, stopped: 3, paused: 4 } as const;

/** Exit status of a process whose VM went away under it (as containerd reports a lost runc task). */
const LOST_EXIT_STATUS = 255;

interface Process {
  containerId: string;
  execId: string;
  status: 'created' | 'running' | 'paused' | 'stopped';
  stdio: { stdin: string; stdout: string; stderr: string; terminal: boolean };
  output: ProcessOutput | undefined;
  /** The stdin FIFO's copier, from Start until CloseIO or the exit. */
  input: ProcessInput | undefined;
  /** CloseIO came (it may come before Start: stdin that ended at once). */
  stdinClosed: boolean;
  exit: { status: number; at: Date } | undefined;
  exited: Promise<void>;
  markExited: () => void;
  /** Held while Start runs, so TaskExit never goes out before TaskStart. */
  startGate: Promise<void>;
}

interface Task extends Process {
  bundle: string;
  role: ContainerRole;
  execs: Map<string, Process>;
}

interface Pod {
  id: string;
  sandbox: Sandbox;
  network: PodNetwork | undefined;
}

/** The pod network a pod's shim attached, in the pause container's bundle. */
export const NETWORK_FILE = 'edgebox-network.json';

/** The network namespace CNI set up for a CRI pod (absent: the pod would share the host's). */
function podNetnsPath(spec: OciSpec): string | undefined {
  return spec.linux?.namespaces?.find((ns) => ns.type === 'network')?.path || undefined;
}

function newProcess(
  containerId: string,
  execId: string,
  stdio: Process['stdio'],
  output: ProcessOutput | undefined,
): Process {
  let markExited = (): void => undefined;
  const exited = new Promise<void>((resolve) => (markExited = resolve));
  return {
    containerId,
    execId,
    status: 'created',
    stdio,
    output,
    input: undefined,
    stdinClosed: false,
    exit: undefined,
    exited,
    markExited,
    startGate: Promise.resolve(),
  };
}

/**
 * containerd's Task service for one pod: one VM (a runtime/sandbox Sandbox)
 * and the containers and execs containerd creates in it. A CRI pod's pause
 * container is the VM itself; its containers run in the guest. Every RPC is
 * answered from this state; events go out through the EventSink in order.
 */
export class TaskService {
  readonly #config: ShimConfig;
  readonly #events: EventSink;
  readonly #log: Logger;
  readonly #onShutdown: () => void;
  readonly #tasks = new Map<string, Task>();
  #pod: Pod | undefined;

  constructor(deps: {
    config: ShimConfig;
    events: EventSink;
    log: Logger;
    onShutdown: () => void;
  }) {
    this.#config = deps.config;
    this.#events = deps.events;
    this.#log = deps.log;
    this.#onShutdown = deps.onShutdown;
  }

  /** The ttrpc method table of containerd.task.v2.Task. */
  methods(): Map<string, MethodHandler> {
    const table = new Map<string, MethodHandler>();
    const add = <Req extends Message>(
      method: string,
      request: string,
      response: string | undefined,
      handler: (req: Req) => Promise<Message>,
    ): void => {
      const inCodec = codecFor<Req>(`containerd.task.v2.${request}`);
      const outCodec = codecFor(`containerd.task.v2.${response ?? 'Empty'}`);
      table.set(method, async (payload) => outCodec.encode(await handler(inCodec.decode(payload))));
    };
    add('Create', 'CreateTaskRequest', 'CreateTaskResponse', (r) => this.create(r as never));
    add('Start', 'StartRequest', 'StartResponse', (r) => this.start(r as never));
    add('Delete', 'DeleteRequest', 'DeleteResponse', (r) => this.delete(r as never));
    add('Exec', 'ExecProcessRequest', undefined, (r) => this.exec(r as never));
    add('State', 'StateRequest', 'StateResponse', (r) => this.state(r as never));
    add('Pids', 'PidsRequest', 'PidsResponse', (r) => this.pids(r as never));
    add('Kill', 'KillRequest', undefined, (r) => this.kill(r as never));
    add('Wait', 'WaitRequest', 'WaitResponse', (r) => this.wait(r as never));
    add('Connect', 'ConnectRequest', 'ConnectResponse', () => this.connect());
    add('Shutdown', 'ShutdownRequest', undefined, (r) => this.shutdown(r as never));
    add('CloseIO', 'CloseIORequest', undefined, (r) => this.closeIO(r as never));
    add('Stats', 'StatsRequest', 'StatsResponse', (r) => this.stats(r as never));
    add('Pause', 'PauseRequest', undefined, (r) => this.pause(r as never, true));
    add('Resume', 'ResumeRequest', undefined, (r) => this.pause(r as never, false));
    add('Update', 'UpdateTaskRequest', undefined, (r) => this.update(r as never));
    add('ResizePty', 'ResizePtyRequest', undefined, (r) => this.resizePty(r as never));
    add('Checkpoint', 'CheckpointTaskRequest', undefined, () =>
      Promise.reject(
        new TtrpcError(
          Code.unimplemented,
          'checkpoints are not implemented by the edgebox runtime',
        ),
      ),
    );
    return table;
  }

  get pid(): number {
    return this.#pod?.sandbox.pids.qemu ?? process.pid;
  }

  async create(req: {
    id: string;
    bundle: string;
    rootfs: RootfsMount[];
    terminal: boolean;
    stdin: string;
    stdout: string;
    stderr: string;
  }): Promise<Message> {
    if (this.#tasks.has(req.id))
      throw new TtrpcError(Code.alreadyExists, `task ${req.id} already exists`);
    const spec = await readBundleSpec(req.bundle).catch(invalid);
    const role = (() => {
      try {
        const r = containerRole(req.id, spec);
        checkSupported(spec);
        return r;
      } catch (err) {
        return invalid(err);
      }
    })();
    if (role.kind !== 'container') {
      if (this.#pod)
        throw new TtrpcError(Code.failedPrecondition, `this shim already runs pod ${this.#pod.id}`);
      await this.#startPod(
        role.podId,
        req.bundle,
        role.kind === 'sandbox' ? podNetnsPath(spec) : undefined,
        spec.linux?.cgroupsPath,
      );
    } else if (this.#pod?.id !== role.podId) {
      throw new TtrpcError(
        Code.failedPrecondition,
        `container ${req.id}: pod ${role.podId} has no VM in this shim`,
      );
    }
    const sandbox = this.#pod!.sandbox;
    let output: ProcessOutput | undefined;
    if (role.kind !== 'sandbox') {
      let mounted = false;
      try {
        const rootfs =
          req.rootfs.length > 0
            ? await mountRootfs(req.bundle, req.rootfs)
            : rootOf(req.bundle, spec.root?.path);
        mounted = req.rootfs.length > 0;
        const mounts = await readMountInfo();
        const containerSpec = (() => {
          try {
            return {
              ...containerSpecFromOci(req.id, spec, rootfs, (path) => mountRootAt(mounts, path)),
              stdin: req.stdin !== '',
              terminal: req.terminal || spec.process?.terminal === true,
            };
          } catch (err) {
            return invalid(err);
          }
        })();
        await makeFileMountPoints(rootfs, containerSpec.volumes ?? []);
        output = await ProcessOutput.open(req);
        await sandbox.createContainer(containerSpec);
      } catch (err) {
        await output?.close();
        if (mounted) await unmountRootfs(req.bundle);
        if (role.kind === 'pod') await this.#stopPod();
        throw err instanceof TtrpcError
          ? err
          : new TtrpcError(Code.internal, (err as Error).message);
      }
    }
    const task: Task = {
      ...newProcess(
        req.id,
        '',
        {
          stdin: req.stdin,
          stdout: req.stdout,
          stderr: req.stderr,
          terminal: req.terminal,
        },
        output,
      ),
      bundle: req.bundle,
      role,
      execs: new Map(),
    };
    this.#tasks.set(req.id, task);
    this.#events.publish('/tasks/create', {
      container_id: req.id,
      bundle: req.bundle,
      rootfs: req.rootfs,
      io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
      pid: this.pid,
    });
    return { pid: this.pid };
  }

  async start(req: { id: string; exec_id: string }): Promise<Message> {
    const task = this.#task(req.id);
    const proc = this.#process(task, req.exec_id);
    if (proc.status !== 'created')
      throw new TtrpcError(
        Code.failedPrecondition,
        `${describe(proc)} is ${proc.status}, not created`,
      );
    let open = (): void => undefined;
    proc.startGate = new Promise((resolve) => (open = resolve));
    try {
      if (task.role.kind !== 'sandbox') {
        const sandbox = this.#sandbox();
        if (req.exec_id) await sandbox.exec(task.containerId, this.#execSpecs.get(proc)!);
        else await sandbox.startContainer(task.containerId);
        if (proc.stdio.stdin) {
          const execId = req.exec_id || undefined;
          proc.input = ProcessInput.open(proc.stdio.stdin, (data) =>
            sandbox.writeStdin(task.containerId, execId, data),
          );
          if (proc.stdinClosed) await this.#closeStdin(task, proc);
        }
      }
      proc.status = 'running';
      if (req.exec_id)
        this.#events.publish('/tasks/exec-started', {
          container_id: req.id,
          exec_id: req.exec_id,
          pid: this.pid,
        });
      else this.#events.publish('/tasks/start', { container_id: req.id, pid: this.pid });
      return { pid: this.pid };
    } catch (err) {
      throw asTtrpc(err);
    } finally {
      open();
    }
  }

  readonly #execSpecs = new WeakMap<Process, ReturnType<typeof execSpecFromOci>>();

  async exec(req: {
    id: string;
    exec_id: string;
    terminal: boolean;
    stdin: string;
    stdout: string;
    stderr: string;
    spec: Any | null;
  }): Promise<Message> {
    const task = this.#task(req.id);
    if (task.execs.has(req.exec_id))
      throw new TtrpcError(Code.alreadyExists, `exec ${req.exec_id} already exists in ${req.id}`);
    if (task.role.kind === 'sandbox')
      throw new TtrpcError(
        Code.failedPrecondition,
        `${req.id} is a pod sandbox; exec into its containers`,
      );
    if (task.status !== 'running')
      throw new TtrpcError(Code.failedPrecondition, `container ${req.id} is ${task.status}`);
    if (!req.spec)
      throw new TtrpcError(Code.invalidArgument, `exec ${req.exec_id}: no process spec`);
    let spec;
    try {
      const base = execSpecFromOci(req.exec_id, parseProcess(req.spec.value));
      spec = { ...base, stdin: req.stdin !== '', terminal: req.terminal || base.terminal === true };
    } catch (err) {
      return invalid(err);
    }
    const output = await ProcessOutput.open(req);
    const proc = newProcess(
      req.id,
      req.exec_id,
      {
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        terminal: spec.terminal === true,
      },
      output,
    );
    this.#execSpecs.set(proc, spec);
    task.execs.set(req.exec_id, proc);
    this.#events.publish('/tasks/exec-added', { container_id: req.id, exec_id: req.exec_id });
    return {};
  }

  state(req: { id: string; exec_id: string }): Promise<Message> {
    const task = this.#task(req.id);
    const proc = this.#process(task, req.exec_id);
    return Promise.resolve({
      id: req.id,
      exec_id: req.exec_id,
      bundle: task.bundle,
      pid: this.pid,
      status: Status[proc.status],
      ...proc.stdio,
      exit_status: proc.exit?.status ?? 0,
      ...(proc.exit ? { exited_at: timestamp(proc.exit.at) } : {}),
    });
  }

  pids(req: { id: string }): Promise<Message> {
    this.#task(req.id);
    return Promise.resolve({ processes: [{ pid: this.pid }] });
  }

  async kill(req: { id: string; exec_id: string; signal: number; all: boolean }): Promise<Message> {
    const task = this.#task(req.id);
    const proc = this.#process(task, req.exec_id);
    if (proc.status === 'stopped')
      throw new TtrpcError(Code.notFound, `${describe(proc)}: process already finished`);
    if (task.role.kind === 'sandbox') {
      // The pause container is the VM: signalling it ends the pod.
      await this.#stopPod();
      this.#finish(task, 128 + req.signal);
      return {};
    }
    if (proc.status === 'created') {
      this.#finish(proc, 128 + req.signal);
      return {};
    }
    try {
      await this.#sandbox().kill(task.containerId, req.signal, req.exec_id || undefined);
    } catch (err) {
      throw asTtrpc(err);
    }
    return {};
  }

  async wait(req: { id: string; exec_id: string }): Promise<Message> {
    const proc = this.#process(this.#task(req.id), req.exec_id);
    await proc.exited;
    return { exit_status: proc.exit!.status, exited_at: timestamp(proc.exit!.at) };
  }

  async delete(req: { id: string; exec_id: string }): Promise<Message> {
    const task = this.#task(req.id);
    if (req.exec_id) {
      const proc = this.#process(task, req.exec_id);
      if (proc.status === 'running')
        throw new TtrpcError(Code.failedPrecondition, `${describe(proc)} is still running`);
      task.execs.delete(req.exec_id);
      await proc.output?.close();
      return deleted(this.pid, proc);
    }
    if (task.status === 'running')
      throw new TtrpcError(Code.failedPrecondition, `${describe(task)} is still running`);
    const pid = this.pid;
    if (task.role.kind === 'container' && this.#pod?.sandbox.state === 'running') {
      await this.#pod.sandbox
        .deleteContainer(task.containerId)
        .catch((err: Error) =>
          this.#log.warn(
            { err, container: task.containerId },
            'guest could not delete the container',
          ),
        );
    }
    if (task.role.kind !== 'container') await this.#stopPod();
    await task.output?.close();
    await unmountRootfs(task.bundle);
    this.#tasks.delete(req.id);
    const response = deleted(pid, task);
    this.#events.publish('/tasks/delete', {
      container_id: req.id,
      pid,
      exit_status: response.exit_status,
      exited_at: response.exited_at,
      id: req.id,
    });
    return response;
  }

  /**
   * Pause/Resume stop and continue the VM (QMP stop/cont): the whole pod, so
   * only for a task that is the pod (a CRI pod sandbox, a ctr-run container).
   */
  async pause(req: { id: string }, pausing: boolean): Promise<Message> {
    const task = this.#task(req.id);
    if (task.role.kind === 'container')
      throw new TtrpcError(
        Code.unimplemented,
        `${req.id}: pausing one container of a pod is not implemented (pause the pod's sandbox)`,
      );
    const wanted = pausing ? 'running' : 'paused';
    if (task.status !== wanted)
      throw new TtrpcError(
        Code.failedPrecondition,
        `task ${req.id} is ${task.status}, not ${wanted}`,
      );
    try {
      if (pausing) await this.#sandbox().pauseVm();
      else await this.#sandbox().resumeVm();
    } catch (err) {
      throw asTtrpc(err);
    }
    for (const t of this.#tasks.values()) {
      for (const proc of [t, ...t.execs.values()]) {
        if (proc.status === wanted) proc.status = pausing ? 'paused' : 'running';
      }
    }
    this.#events.publish(pausing ? '/tasks/paused' : '/tasks/resumed', { container_id: req.id });
    return {};
  }

  /** New CPU, memory and pids limits for a container's cgroup in the guest. */
  async update(req: { id: string; resources: Any | null }): Promise<Message> {
    const task = this.#task(req.id);
    if (task.role.kind === 'sandbox')
      throw new TtrpcError(
        Code.unimplemented,
        `${req.id} is a pod sandbox: resizing the pod's VM is not implemented (update its containers)`,
      );
    let limits;
    try {
      limits = resourceLimitsFromUpdate(req.resources);
    } catch (err) {
      return invalid(err);
    }
    if (task.status === 'stopped')
      throw new TtrpcError(Code.failedPrecondition, `${describe(task)} has exited`);
    try {
      await this.#sandbox().updateResources(task.containerId, limits);
    } catch (err) {
      throw asTtrpc(err);
    }
    return {};
  }

  async stats(req: { id: string }): Promise<Message> {
    const task = this.#task(req.id);
    if (task.role.kind === 'sandbox')
      throw new TtrpcError(
        Code.unimplemented,
        `${req.id} is a pod sandbox: stats are per container`,
      );
    try {
      return { stats: containerMetrics(await this.#sandbox().stats(task.containerId)) };
    } catch (err) {
      throw asTtrpc(err);
    }
  }

  connect(): Promise<Message> {
    return Promise.resolve({ shim_pid: process.pid, task_pid: this.pid, version: '2' });
  }

  shutdown(req: { now: boolean }): Promise<Message> {
    if (this.#tasks.size === 0 || req.now) {
      void this.#stopPod().finally(() => this.#onShutdown());
    }
    return Promise.resolve({});
  }

  /** Ends a process's stdin once what containerd wrote before asking has reached it. */
  async closeIO(req: { id: string; exec_id: string; stdin: boolean }): Promise<Message> {
    const task = this.#task(req.id);
    const proc = this.#process(task, req.exec_id);
    if (!req.stdin || proc.stdinClosed) return {};
    proc.stdinClosed = true;
    await this.#closeStdin(task, proc);
    return {};
  }

  async #closeStdin(task: Task, proc: Process): Promise<void> {
    const input = proc.input;
    if (!input) return; // not started yet: Start closes it
    proc.input = undefined;
    await input.close();
    if (proc.status === 'stopped') return;
    try {
      await this.#sandbox().closeStdin(task.containerId, proc.execId || undefined);
    } catch (err) {
      // The process may have ended meanwhile: its stdin is closed then.
      if ((proc.status as Process['status']) !== 'stopped') throw asTtrpc(err);
    }
  }

  /** The window size of an exec's terminal (containerd: width = columns, height = rows). */
  async resizePty(req: {
    id: string;
    exec_id: string;
    width: number;
    height: number;
  }): Promise<Message> {
    const task = this.#task(req.id);
    const proc = this.#process(task, req.exec_id);
    if (!proc.stdio.terminal)
      throw new TtrpcError(Code.failedPrecondition, `${describe(proc)} has no terminal`);
    if (proc.status !== 'running')
      throw new TtrpcError(Code.failedPrecondition, `${describe(proc)} is ${proc.status}`);
    try {
      await this.#sandbox().resizeTerminal(task.containerId, req.exec_id || undefined, {
        rows: Math.min(req.height, 65535),
        cols: Math.min(req.width, 65535),
      });
    } catch (err) {
      throw asTtrpc(err);
    }
    return {};
  }

  /** Ends the VM of a shim that is going away (containerd's Shutdown, a signal). */
  async close(): Promise<void> {
    await this.#stopPod();
  }

  /**
   * Boots the pod's VM. With the pod sandbox's OCI cgroupsPath (kubelet's pod
   * cgroup, through containerd) QEMU, virtiofsd and this shim run in that
   * cgroup, so the node's pod accounting covers the VM.
   */
  async #startPod(
    podId: string,
    bundle: string,
    netnsPath: string | undefined,
    cgroupsPath: string | undefined,
  ): Promise<void> {
    let image: GuestImage;
    try {
      image = await loadPrebuiltGuestImage(this.#config.guestImageDir);
    } catch (err) {
      throw new TtrpcError(Code.failedPrecondition, (err as Error).message);
    }
    let network: PodNetwork | undefined;
    let sandbox: Sandbox;
    // Claimed first: the tap belongs to the VMM's ids of this slot (QEMU opens it unprivileged).
    let idSlot: NumberClaim | undefined;
    try {
      idSlot = await claimIdSlot(this.#config.runRoot);
      if (netnsPath) {
        network = await attachPodNetwork(netnsPath, vmmIdsOfSlot(idSlot.value));
        // Kept beside the bundle so `shim delete` can undo it after a dead shim.
        await writeFile(join(bundle, NETWORK_FILE), JSON.stringify(network));
      }
      const cgroupPath = cgroupsPath === undefined ? undefined : cgroupPathFromOci(cgroupsPath);
      sandbox = await Sandbox.create(
        {
          id: sandboxIdFor(podId),
          ...(cgroupPath ? { cgroupPath } : {}),
          image,
          runRoot: this.#config.runRoot,
          memoryMiB: this.#config.memoryMiB,
          cpus: this.#config.cpus,
          accel: this.#config.accel,
          ...(network
            ? {
                podNetwork: {
                  netnsPath: network.netnsPath,
                  tapName: network.tapName,
                  mac: network.mac,
                  address: network.address,
                  mtu: network.mtu,
                  routes: network.routes,
                  ...(network.gateway ? { gateway: network.gateway } : {}),
                },
              }
            : {}),
        },
        // The sandbox owns the slot from here, released by it on failure too.
        { idSlot },
      );
      idSlot = undefined;
    } catch (err) {
      await idSlot?.release().catch(() => undefined);
      if (network) await detachPodNetwork(network).catch(() => undefined);
      throw asTtrpc(err);
    }
    try {
      // The sandbox puts the shim back where it was before it removes the cgroup.
      await sandbox.hostCgroup.join(process.pid);
    } catch (err) {
      await sandbox.stop(5000).catch(() => undefined);
      if (network) await detachPodNetwork(network).catch(() => undefined);
      throw asTtrpc(err);
    }
    this.#pod = { id: podId, sandbox, network };
    const t = sandbox.timings;
    this.#log.info(
      {
        pod: podId,
        accel: sandbox.accel,
        vmmMs: Math.round(t.vmmReady - t.begin),
        agentReadyMs: Math.round(t.agentReady - t.begin),
        guestInitSeconds: t.guestInitSeconds,
        guestAgentReadySeconds: t.guestAgentReadySeconds,
      },
      'pod VM ready',
    );
    sandbox.onEvent((event) => this.#onSandboxEvent(event));
  }

  async #stopPod(): Promise<void> {
    const pod = this.#pod;
    if (!pod) return;
    await pod.sandbox
      .stop(5000)
      .catch((err: Error) => this.#log.warn({ err }, 'pod stop incomplete'));
    if (pod.network) {
      await detachPodNetwork(pod.network).catch((err: Error) =>
        this.#log.warn({ err }, 'pod network cleanup incomplete'),
      );
    }
    for (const task of this.#tasks.values()) {
      for (const proc of [task, ...task.execs.values()]) {
        if (proc.status !== 'stopped' && task.role.kind !== 'sandbox') this.#finish(proc, 128 + 9);
      }
    }
  }

  #onSandboxEvent(event: SandboxEvent): void {
    switch (event.type) {
      case 'output': {
        const proc = this.#find(event.containerId, event.execId);
        proc?.output?.write(event.stream, event.data);
        return;
      }
      case 'container-oom':
        // Published at once: the exit of the killed process waits for its output, so it follows.
        if (this.#tasks.has(event.containerId))
          this.#events.publish('/tasks/oom', { container_id: event.containerId });
        return;
      case 'container-exited': {
        const proc = this.#find(event.containerId, event.execId);
        if (proc) void proc.startGate.then(() => this.#finish(proc, event.status.exitCode));
        return;
      }
      case 'sandbox-failed': {
        this.#log.error({ err: event.error }, 'pod VM failed');
        const reason = `edgebox: the pod's VM failed: ${event.error.message}\n`;
        for (const task of this.#tasks.values()) {
          for (const proc of [task, ...task.execs.values()]) {
            if (proc.status === 'stopped') continue;
            proc.output?.write('stderr', Buffer.from(reason));
            this.#finish(proc, LOST_EXIT_STATUS);
          }
        }
        return;
      }
      case 'agent-log':
        this.#log.debug({ guest: event.message, level: event.level }, 'guest agent');
        return;
      default:
        return;
    }
  }

  #finish(proc: Process, status: number): void {
    if (proc.status === 'stopped') return;
    proc.status = 'stopped';
    proc.exit = { status, at: new Date() };
    proc.input?.destroy();
    proc.input = undefined;
    // Output first: containerd reads the FIFOs to their end before it reports the exit.
    void (proc.output?.close() ?? Promise.resolve()).then(() => {
      this.#events.publish('/tasks/exit', {
        container_id: proc.containerId,
        id: proc.execId || proc.containerId,
        pid: this.pid,
        exit_status: status,
        exited_at: timestamp(proc.exit!.at),
      });
      proc.markExited();
    });
  }

  #task(id: string): Task {
    const task = this.#tasks.get(id);
    if (!task) throw new TtrpcError(Code.notFound, `task ${id} not found`);
    return task;
  }

  #process(task: Task, execId: string): Process {
    if (!execId) return task;
    const proc = task.execs.get(execId);
    if (!proc)
      throw new TtrpcError(Code.notFound, `exec ${execId} not found in task ${task.containerId}`);
    return proc;
  }

  #find(containerId: string, execId: string | undefined): Process | undefined {
    const task = this.#tasks.get(containerId);
    return execId ? task?.execs.get(execId) : task;
  }

  #sandbox(): Sandbox {
    if (!this.#pod) throw new TtrpcError(Code.failedPrecondition, 'this shim has no pod VM');
    return this.#pod.sandbox;
  }
}

/**
 * A file volume (CRI's /etc/hosts, /etc/resolv.conf, /etc/hostname) is bound
 * over a file in the rootfs. The host makes missing ones (empty, in the
 * container's writable layer): with the guest's ids mapped, the guest's root
 * cannot create files in the image's root-owned directories.
 */
async function makeFileMountPoints(
  rootfs: string,
  volumes: readonly ({ hostPath: string; containerPath: string } | { podVolume: string })[],
): Promise<void> {
  for (const volume of volumes) {
    // Pod volumes are directories on the sandbox's disk.
    if (!('hostPath' in volume) || !(await stat(volume.hostPath)).isFile()) continue;
    const target = join(rootfs, volume.containerPath);
    if (!target.startsWith(`${rootfs}/`)) continue;
    // Never through the image's symlinks (they could point anywhere on the host): real
    // directories only, made one level at a time; 'wx' does not follow a final symlink either.
    let dir = rootfs;
    let plain = true;
    for (const part of dirname(target).slice(rootfs.length).split('/').filter(Boolean)) {
      dir = join(dir, part);
      const info = await lstat(dir).catch(() => undefined);
      if (!info) await mkdir(dir);
      else if (!info.isDirectory()) plain = false;
      if (!plain) break;
    }
    if (plain) await writeFile(target, '', { flag: 'wx' }).catch(() => undefined);
  }
}

function describe(proc: Process): string {
  return proc.execId ? `exec ${proc.execId} of ${proc.containerId}` : `task ${proc.containerId}`;
}

function deleted(
  pid: number,
  proc: Process,
): { pid: number; exit_status: number; exited_at: Timestamp } {
  return {
    pid,
    exit_status: proc.exit?.status ?? 0,
    exited_at: timestamp(proc.exit?.at ?? new Date()),
  };
}

function rootOf(bundle: string, root: string | undefined): string {
  if (!root)
    throw new TtrpcError(Code.invalidArgument, 'root.path: no rootfs mounts and no root path');
  return root.startsWith('/') ? root : `${bundle}/${root}`;
}

function invalid(err: unknown): never {
  if (err instanceof UnsupportedSpecError || err instanceof SyntaxError)
    throw new TtrpcError(Code.invalidArgument, err.message, { cause: err });
  throw err;
}

function asTtrpc(err: unknown): TtrpcError {
  if (err instanceof TtrpcError) return err;
  if (err instanceof SandboxError)
    return new TtrpcError(Code.failedPrecondition, err.message, { cause: err });
  return new TtrpcError(Code.internal, (err as Error).message, { cause: err });
}
