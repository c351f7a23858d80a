import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile, readlink, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { constants } from 'node:os';
import type {
  ContainerStats,
  GuestContainerSpec,
  ProcessSpec,
  ResourceLimits,
} from '../protocol/messages.ts';
import { applyLimits, createCgroup, killCgroup, oomKillCount, removeCgroup } from './cgroup.ts';
import { GUEST_SOCAT_LIBRARY_DIR, GUEST_SOCAT_PATH } from '../protocol/guest-layout.ts';
import {
  TERMINAL_STATUS_FD,
  containerExecScript,
  containerStartScript,
  containerTerminalExecScript,
} from './container-script.ts';
import { containerStats, type FsCounters } from './stats.ts';

/** What the manager reports as it happens; the agent turns these into messages. */
export interface ContainerEvents {
  output(
    containerId: string,
    execId: string | undefined,
    stream: 'stdout' | 'stderr',
    data: Buffer,
  ): void;
  started(containerId: string, execId: string | undefined, pid: number): void;
  exited(containerId: string, execId: string | undefined, exitCode: number, signal?: number): void;
  /** The OOM killer killed processes of the container since the last report. */
  oom(containerId: string): void;
}

interface Container {
  spec: GuestContainerSpec;
  cgroup: string;
  state: 'created' | 'running' | 'exited';
  /** The process the agent spawned to start the container (its PID 1 is below it). */
  launcher?: ChildProcess;
  execs: Map<string, ChildProcess>;
  fsFloor: FsCounters;
  /** memory.events oom_kill already reported. */
  oomKills: number;
}

const run = promisify(execFile);

/** Exit status as a shell reports it: the code, or 128+N for a death by signal N. */
export function exitStatus(
  code: number | null,
  signal: NodeJS.Signals | null,
): {
  exitCode: number;
  signal?: number;
} {
  if (code !== null) return { exitCode: code };
  const number = signal ? (constants.signals[signal] ?? 0) : 0;
  return { exitCode: (128 + number) & 0xff, signal: number || undefined };
}

async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text
    .trim()
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(Number);
}

/**
 * The processes below `pid` that nsenter forked into the container's PID
 * namespace (the exec'd process itself, not the nsenter, socat or shell
 * between it and the agent).
 */
async function enteredProcesses(pid: number): Promise<number[]> {
  const own = await readlink('/proc/self/ns/pid');
  const found: number[] = [];
  let level = [pid];
  for (let depth = 0; depth < 8 && level.length > 0 && found.length === 0; depth++) {
    const next: number[] = [];
    for (const parent of level) {
      for (const child of await childrenOf(parent)) {
        const ns = await readlink(`/proc/${child}/ns/pid`).catch(() => own);
        if (ns === own) next.push(child);
        else found.push(child);
      }
    }
    level = next;
  }
  return found;
}

/** Containers of this sandbox, keyed by id; each one a cgroup plus a set of namespaces. */
export class ContainerManager {
  readonly #containers = new Map<string, Container>();
  readonly #events: ContainerEvents;
  readonly #shareRoot: string;

  constructor(events: ContainerEvents, shareRoot: string) {
    this.#events = events;
    this.#shareRoot = shareRoot;
  }

  async create(spec: GuestContainerSpec): Promise<void> {
    if (this.#containers.has(spec.id)) throw new Error(`container ${spec.id} already exists`);
    const rootfs = `${this.#shareRoot}/${spec.rootfs}`;
    const info = await stat(rootfs).catch(() => undefined);
    if (!info?.isDirectory())
      throw new Error(`rootfs ${spec.rootfs} of ${spec.id} is not a directory on the share`);
    const cgroup = await createCgroup(spec.id, spec.resources);
    this.#containers.set(spec.id, {
      spec,
      cgroup,
      state: 'created',
      execs: new Map(),
      fsFloor: { readBytes: 0, writeBytes: 0, readCalls: 0, writeCalls: 0 },
      oomKills: 0,
    });
  }

  #get(id: string): Container {
    const container = this.#containers.get(id);
    if (!container) throw new Error(`no container ${id}`);
    return container;
  }

  async start(id: string): Promise<number> {
    const container = this.#get(id);
    if (container.state !== 'created')
      throw new Error(`container ${id} is ${container.state}, not created`);
    const script = containerStartScript(container.spec, {
      cgroupDir: container.cgroup,
      rootfs: `${this.#shareRoot}/${container.spec.rootfs}`,
      shareRoot: this.#shareRoot,
      socat: GUEST_SOCAT_PATH,
      socatLibraries: GUEST_SOCAT_LIBRARY_DIR,
    });
    const child = this.#spawn(id, undefined, script, container.spec.process, () => {
      container.state = 'exited';
    });
    container.launcher = child;
    container.state = 'running';
    return child.pid ?? 0;
  }

  async exec(id: string, execId: string, process: ProcessSpec): Promise<number> {
    const container = this.#get(id);
    if (container.state !== 'running')
      throw new Error(`container ${id} is ${container.state}, not running`);
    if (container.execs.has(execId)) throw new Error(`exec ${execId} already exists in ${id}`);
    const initPid = await this.#initPid(container);
    await this.#setUp(container, initPid);
    const script = process.terminal
      ? containerTerminalExecScript(process, {
          cgroupDir: container.cgroup,
          initPid,
          rootfs: `${this.#shareRoot}/${container.spec.rootfs}`,
          socat: GUEST_SOCAT_PATH,
          socatLibraries: GUEST_SOCAT_LIBRARY_DIR,
        })
      : containerExecScript(process, { cgroupDir: container.cgroup, initPid });
    const child = this.#spawn(id, execId, script, process, () => container.execs.delete(execId));
    container.execs.set(execId, child);
    return child.pid ?? 0;
  }

  #process(id: string, execId: string | undefined): ChildProcess {
    const container = this.#get(id);
    const child = execId === undefined ? container.launcher : container.execs.get(execId);
    if (!child)
      throw new Error(`no running ${execId === undefined ? 'process' : `exec ${execId}`} in ${id}`);
    return child;
  }

  /** Resolves once the process's stdin pipe took `data`: the host sends the next chunk then. */
  writeStdin(id: string, execId: string | undefined, data: Buffer): Promise<void> {
    const stdin = this.#process(id, execId).stdin;
    if (!stdin || stdin.writableEnded)
      return Promise.reject(new Error(`${execId ?? id} has no open stdin`));
    return new Promise((resolve, reject) =>
      stdin.write(data, (err) =>
        err ? reject(new Error(`stdin of ${execId ?? id}: ${err.message}`)) : resolve(),
      ),
    );
  }

  closeStdin(id: string, execId: string | undefined): void {
    this.#process(id, execId).stdin?.end();
  }

  /** Sets the window size of a terminal exec's pty; the kernel sends its foreground SIGWINCH. */
  async resizeTerminal(
    id: string,
    execId: string | undefined,
    rows: number,
    cols: number,
  ): Promise<void> {
    const child = this.#process(id, execId);
    if (child.stdio.length <= TERMINAL_STATUS_FD || child.pid === undefined)
      throw new Error(`${execId ?? id} has no terminal`);
    // socat's child (the shell around the process) holds the pty's slave end as its stdin;
    // until socat forked it, the children are the relay's own mount commands.
    for (let attempt = 0; attempt < 1000; attempt++) {
      for (const holder of await childrenOf(child.pid)) {
        const stdin = await readlink(`/proc/${holder}/fd/0`).catch(() => '');
        if (!/pts\/\d+$/.test(stdin)) continue;
        await run('/bin/stty', [
          '-F',
          `/proc/${holder}/fd/0`,
          'rows',
          String(rows),
          'cols',
          String(cols),
        ]);
        return;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`${execId ?? id} has no process on its terminal`);
  }

  async signal(id: string, signal: number, execId?: string): Promise<void> {
    const container = this.#get(id);
    if (execId !== undefined) {
      const child = container.execs.get(execId);
      if (!child?.pid) throw new Error(`no running exec ${execId} in ${id}`);
      const targets = await enteredProcesses(child.pid);
      for (const pid of targets.length > 0 ? targets : [child.pid]) process.kill(pid, signal);
      return;
    }
    if (container.state !== 'running')
      throw new Error(`container ${id} is ${container.state}, not running`);
    process.kill(await this.#initPid(container), signal);
  }

  async stats(id: string): Promise<ContainerStats> {
    const container = this.#get(id);
    const { stats, fs } = await containerStats(container.cgroup, container.fsFloor);
    container.fsFloor = fs;
    return stats;
  }

  /** New limits for a created or running container's cgroup (a finished one has nothing to limit). */
  async update(id: string, limits: ResourceLimits): Promise<void> {
    const container = this.#get(id);
    if (container.state === 'exited') throw new Error(`container ${id} has exited`);
    await applyLimits(container.cgroup, limits);
  }

  async delete(id: string): Promise<void> {
    const container = this.#get(id);
    await killCgroup(container.cgroup);
    await removeCgroup(container.cgroup);
    this.#containers.delete(id);
  }

  /** Stops (or resumes) reading container output while the host channel is backed up. */
  setOutputPaused(paused: boolean): void {
    for (const container of this.#containers.values()) {
      for (const child of [container.launcher, ...container.execs.values()]) {
        for (const stream of [child?.stdout, child?.stderr]) {
          if (paused) stream?.pause();
          else stream?.resume();
        }
      }
    }
  }

  async killAll(): Promise<void> {
    for (const container of this.#containers.values()) await killCgroup(container.cgroup);
  }

  /** The container's PID 1 as the guest sees it: the process `unshare -f` forked. */
  async #initPid(container: Container): Promise<number> {
    const launcher = container.launcher?.pid;
    if (launcher === undefined) throw new Error(`container ${container.spec.id} was never started`);
    for (let attempt = 0; attempt < 500; attempt++) {
      // Below the launcher: unshare, or with a terminal socat, its shell and unshare.
      const [pid] = await enteredProcesses(launcher);
      if (pid !== undefined) return pid;
      // unshare forks right after exec; under emulation that can take a few ms.
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`container ${container.spec.id} has no PID 1 (launcher ${launcher})`);
  }

  /**
   * Waits until PID 1 has finished its setup (mounts, volumes) and chrooted
   * into the rootfs: an exec that joined its namespaces earlier (a CRI
   * ExecSync right after StartContainer) would see a half-built container.
   */
  async #setUp(container: Container, initPid: number): Promise<void> {
    for (let attempt = 0; attempt < 3000; attempt++) {
      const root = await readlink(`/proc/${initPid}/root`).catch(() => undefined);
      if (root === undefined)
        throw new Error(`container ${container.spec.id} ended before it was set up`);
      if (root !== '/') return;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error(`container ${container.spec.id} is still setting up after 30 s`);
  }

  #spawn(
    id: string,
    execId: string | undefined,
    script: string,
    spec: ProcessSpec,
    onExit: () => void,
  ): ChildProcess {
    const child = spawn('/bin/sh', ['-c', script], {
      stdio: [
        spec.stdin || spec.terminal ? 'pipe' : 'ignore',
        'pipe',
        'pipe',
        ...(spec.terminal ? (['pipe'] as const) : []),
      ],
      env: { PATH: '/bin' },
    });
    // A process that ends without reading all its stdin: the write fails, the host stops sending.
    child.stdin?.on('error', () => undefined);
    // socat exits 0 whatever the process did; the shell around the process writes its status.
    let written = '';
    child.stdio[TERMINAL_STATUS_FD]?.on('data', (chunk: Buffer) => {
      written = (written + chunk.toString()).slice(-16);
      // The process is gone: socat ends once its stdin ends too (it waits for both sides).
      child.stdin?.end();
    });
    child.stdout?.on('data', (chunk: Buffer) => this.#events.output(id, execId, 'stdout', chunk));
    // A terminal has one stream: what its relay itself says goes there too.
    const errorStream = spec.terminal ? 'stdout' : 'stderr';
    child.stderr?.on('data', (chunk: Buffer) =>
      this.#events.output(id, execId, errorStream, chunk),
    );
    child.on('error', (err) =>
      this.#events.output(id, execId, 'stderr', Buffer.from(`edgebox-agent: ${err.message}\n`)),
    );
    // 'close' comes after the pipes are drained, so the exit event follows the last output.
    child.on('close', (code, signal) => {
      onExit();
      // An OOM kill is checked when a process of the container ends, so its report precedes
      // that exit (containerd's order). A kill that ends no process the agent started (a
      // grandchild) is reported with the next exit.
      const container = this.#containers.get(id);
      const kills = container ? oomKillCount(container.cgroup) : 0;
      if (container && kills > container.oomKills) {
        container.oomKills = kills;
        this.#events.oom(id);
      }
      const status =
        spec.terminal && /^\d+\n?$/.test(written)
          ? { exitCode: Number(written) & 0xff }
          : exitStatus(code, signal);
      this.#events.exited(id, execId, status.exitCode, status.signal);
    });
    if (child.pid !== undefined) this.#events.started(id, execId, child.pid);
    return child;
  }
}
