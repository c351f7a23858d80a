import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatIdentity, processStartTime } from './identity.ts';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface TrackedProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  /** Resolves when the process has exited and been reaped. */
  exited: Promise<ProcessExit>;
  /** Set once it has exited. */
  exit: ProcessExit | undefined;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** An unprivileged host identity a helper runs as (set before it executes, with no groups kept). */
export interface RunAs {
  uid: number;
  gid: number;
  /** Supplementary groups to keep (say the group of /dev/kvm). */
  groups?: readonly number[];
}

/**
 * The helper's command line behind util-linux's setpriv: the kernel sends it
 * SIGKILL when the runtime dies, however it dies (SIGKILL included), so no
 * VM or file server outlives the runtime that supervises it. setpriv sets the
 * parent-death signal after changing ids, since a change of ids clears it.
 */
export function supervisedCommand(
  command: string,
  args: readonly string[],
  runAs?: RunAs,
): { command: string; args: string[] } {
  const ids = runAs
    ? [
        `--reuid=${runAs.uid}`,
        `--regid=${runAs.gid}`,
        runAs.groups?.length ? `--groups=${runAs.groups.join(',')}` : '--clear-groups',
        '--no-new-privs',
      ]
    : [];
  return { command: 'setpriv', args: [...ids, '--pdeathsig=KILL', '--', command, ...args] };
}

/**
 * `command` started inside a cgroup: a shell writes its own pid to each
 * `cgroup.procs` file, then execs it, so the process (and all it forks) is
 * accounted there from its first page, and keeps its pid.
 */
export function inCgroupCommand(
  procsFiles: readonly string[],
  command: string,
  args: readonly string[],
): { command: string; args: string[] } {
  return {
    command: 'sh',
    args: [
      '-c',
      'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; exec "$@"',
      'sh',
      String(procsFiles.length),
      ...procsFiles,
      command,
      ...args,
    ],
  };
}

/**
 * If the runtime itself exits (an uncaught error, process.exit after Ctrl-C)
 * while helpers run, kill them rather than leave a VM or a file server
 * behind. A SIGKILL of the runtime cannot be caught: then the parent-death
 * signal (supervisedCommand) ends them, and the run directory's pid files
 * (pid and start time) let `sandbox gc` make sure.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/**
 * Every helper process one sandbox starts (virtiofsd, the VMM), with a pid
 * file each in the run directory. stopAll() ends them in reverse start order
 * and waits until each one is reaped, so teardown never leaves one running.
 */
export class ProcessTracker {
  readonly #runDir: string;
  readonly #processes: TrackedProcess[] = [];
  readonly #cgroupProcs: readonly string[];

  /** `cgroupProcs`: the cgroup.procs files of the cgroup every helper starts in (none: the runtime's). */
  constructor(runDir: string, cgroupProcs: readonly string[] = []) {
    this.#runDir = runDir;
    this.#cgroupProcs = cgroupProcs;
    installExitHook();
  }

  get processes(): readonly TrackedProcess[] {
    return this.#processes;
  }

  async spawn(
    name: string,
    command: string,
    args: readonly string[],
    options: SpawnOptions & { runAs?: RunAs } = {},
    /**
     * Runs as soon as the child exists, before any await: output read later may
     * be gone, since Node drains the pipes of an exited child nobody reads.
     */
    attach?: (child: ChildProcess) => void,
  ): Promise<TrackedProcess> {
    // Own process group: a Ctrl-C at the terminal reaches the runtime, which
    // then stops the sandbox in order, not QEMU and virtiofsd behind its back.
    const { runAs, ...spawnOptions } = options;
    const supervised = supervisedCommand(command, args, runAs);
    const started =
      this.#cgroupProcs.length > 0
        ? inCgroupCommand(this.#cgroupProcs, supervised.command, supervised.args)
        : supervised;
    const child = spawn(started.command, started.args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      ...spawnOptions,
    });
    attach?.(child);
    let recordExit: (exit: ProcessExit) => void = () => undefined;
    const exited = new Promise<ProcessExit>((resolve) => (recordExit = resolve));
    child.once('exit', (code, signal) => {
      live.delete(child);
      recordExit({ code, signal });
    });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid ?? 0));
      child.once('error', (err) =>
        reject(new Error(`cannot start ${name} (${command}): ${err.message}`, { cause: err })),
      );
    });
    live.add(child);
    const tracked: TrackedProcess = { name, child, pid, exit: undefined, exited };
    void exited.then((exit) => (tracked.exit = exit));
    this.#processes.push(tracked);
    // setpriv execs the helper in place: the pid (and start time) are the helper's.
    const startTime = await processStartTime(pid);
    await writeFile(
      join(this.#runDir, `${name}.pid`),
      startTime === undefined ? `${pid}\n` : formatIdentity({ pid, startTime }),
    );
    return tracked;
  }

  /**
   * Drops a process that has exited from the list, with its pid file: a
   * helper retried many times (the vsock relay while the guest boots) leaves
   * no trail of dead attempts.
   */
  async forget(tracked: TrackedProcess): Promise<void> {
    await tracked.exited;
    const index = this.#processes.indexOf(tracked);
    if (index < 0) return;
    this.#processes.splice(index, 1);
    if (!this.#processes.some((p) => p.name === tracked.name)) {
      await rm(join(this.#runDir, `${tracked.name}.pid`), { force: true });
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`, for every process still running; waits for all. */
  async stopAll(graceMs = 2000): Promise<void> {
    for (const tracked of [...this.#processes].reverse()) {
      if (!tracked.exit) {
        tracked.child.kill('SIGTERM');
        const timer = setTimeout(() => tracked.child.kill('SIGKILL'), graceMs);
        await tracked.exited;
        clearTimeout(timer);
      }
      await rm(join(this.#runDir, `${tracked.name}.pid`), { force: true });
    }
  }
}
