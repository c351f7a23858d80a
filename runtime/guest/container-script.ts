import type { GuestContainerSpec, ProcessSpec, Rlimit } from '../protocol/messages.ts';
import { shellQuote, shellWords } from './shell-quote.ts';

/**
 * The busybox shell scripts that turn a spec into a running container. Kept as
 * pure functions of the spec so they can be read and tested without a guest.
 *
 * Start: the script moves itself into the container's cgroup (so everything it
 * becomes is accounted there), then `unshare` gives it new mount, UTS, IPC and
 * PID namespaces and forks; inside, as PID 1 of the new PID namespace, it
 * mounts /proc, a minimal /dev and the volumes under the rootfs, and finally
 * `nsenter -r -w -S -G` chroots, changes directory, drops to the user and
 * execs the command, so the command itself is the container's PID 1.
 */

const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

/** busybox ash's `ulimit` letter for each limit and the unit it counts in (bytes per unit). */
const ULIMIT_OPTIONS: Record<Rlimit['type'], { letter: string; unit: number }> = {
  RLIMIT_AS: { letter: 'v', unit: 1024 },
  RLIMIT_CORE: { letter: 'c', unit: 512 },
  RLIMIT_CPU: { letter: 't', unit: 1 },
  RLIMIT_DATA: { letter: 'd', unit: 1024 },
  RLIMIT_FSIZE: { letter: 'f', unit: 512 },
  RLIMIT_LOCKS: { letter: 'x', unit: 1 },
  RLIMIT_MEMLOCK: { letter: 'l', unit: 1024 },
  RLIMIT_MSGQUEUE: { letter: 'q', unit: 1 },
  RLIMIT_NICE: { letter: 'e', unit: 1 },
  RLIMIT_NOFILE: { letter: 'n', unit: 1 },
  RLIMIT_NPROC: { letter: 'u', unit: 1 },
  RLIMIT_RSS: { letter: 'm', unit: 1024 },
  RLIMIT_RTPRIO: { letter: 'r', unit: 1 },
  RLIMIT_SIGPENDING: { letter: 'i', unit: 1 },
  RLIMIT_STACK: { letter: 's', unit: 1024 },
};

/**
 * `ulimit` commands that give the shell, and so the program it execs, the
 * process's rlimits. Soft, hard, soft: the first soft may fail (it is above
 * the current hard limit, which the hard one then raises); the last two must
 * not, and the script stops if they do. Byte limits the shell counts in
 * blocks or kilobytes are rounded down, never loosened.
 */
export function rlimitCommands(rlimits: readonly Rlimit[]): string[] {
  return rlimits.flatMap(({ type, soft, hard }) => {
    const { letter, unit } = ULIMIT_OPTIONS[type];
    const value = (v: number | 'unlimited'): string =>
      v === 'unlimited' ? 'unlimited' : String(Math.floor(v / unit));
    return [
      `ulimit -S${letter} ${value(soft)} 2>/dev/null || :`,
      `ulimit -H${letter} ${value(hard)} || { echo ${shellQuote(`edgebox: cannot set ${type}`)} >&2; exit 126; }`,
      `ulimit -S${letter} ${value(soft)} || { echo ${shellQuote(`edgebox: cannot set ${type}`)} >&2; exit 126; }`,
    ];
  });
}

/** A clean environment, and no_new_privs (busybox setpriv) when the spec asks for it. */
function envPrefix(process: ProcessSpec): string {
  return `env -i ${shellWords(process.env)}${process.noNewPrivileges ? ' /bin/setpriv --nnp' : ''}`;
}

export function containerStartScript(
  spec: GuestContainerSpec,
  paths: {
    cgroupDir: string;
    rootfs: string;
    shareRoot: string;
    /** For a container with a terminal (see terminalRelay). */
    socat?: string;
    socatLibraries?: string;
  },
): string {
  const terminal = spec.process.terminal === true;
  const root = paths.rootfs;
  // Every command here is a process started under emulation in a slow guest,
  // so the steps are folded into as few busybox invocations as they allow.
  const inner: string[] = [
    'set -e',
    `root=${shellQuote(root)}`,
    `hostname ${shellQuote(spec.hostname ?? spec.id)}`,
    'mkdir -p "$root/proc" "$root/dev"',
    'mount -t proc -o nosuid,nodev,noexec proc "$root/proc"',
    'mount -t tmpfs -o nosuid,noexec,mode=755 dev "$root/dev"',
    // Device nodes copied (cp -a makes new nodes), never the guest's whole /dev with the agent port.
    `cp -a ${DEVICES.map((d) => `/dev/${d}`).join(' ')} "$root/dev/"`,
    'mkdir "$root/dev/shm" "$root/dev/pts"',
    'mount -t tmpfs -o nosuid,nodev shm "$root/dev/shm"',
    // The container's own pseudo-terminals (as runc gives it): its ttys carry /dev/pts names it can
    // resolve, and it sees no other container's. With a terminal, the relay made that instance
    // already (its pty is PID 1's) in the mount namespace this one copies.
    terminal
      ? 'mount --bind /dev/pts "$root/dev/pts"'
      : `mount -t devpts -o ${DEVPTS_OPTIONS} devpts "$root/dev/pts"`,
    'ln -s pts/ptmx "$root/dev/ptmx"',
    'ln -s /proc/self/fd "$root/dev/fd"',
  ];
  for (const mount of spec.mounts) {
    const source = `${paths.shareRoot}/${mount.source}`;
    const target = `"$root"${shellQuote(mount.destination)}`;
    // A file bound over a file (CRI's /etc/hosts, /etc/resolv.conf, /etc/hostname) needs a file to cover.
    inner.push(
      `if [ -d ${shellQuote(source)} ]; then mkdir -p ${target}; ` +
        `else mkdir -p "$(dirname ${target})"; [ -e ${target} ] || : > ${target}; fi`,
      `mount --bind ${shellQuote(source)} ${target}`,
    );
    if (mount.readOnly) inner.push(`mount -o remount,bind,ro ${target}`);
  }
  inner.push(
    ...rlimitCommands(spec.process.rlimits ?? []),
    `exec ${envPrefix(spec.process)} /bin/nsenter -r"$root" -w"$root"${shellQuote(spec.process.cwd)} ` +
      `-S ${spec.process.user.uid} -G ${spec.process.user.gid} -- ${shellWords(spec.process.args)}`,
  );
  const launch = `unshare -m -u -i -p -f --propagation private /bin/sh -c ${shellQuote(inner.join('\n'))}`;
  if (!terminal)
    return [`echo $$ > ${shellQuote(`${paths.cgroupDir}/cgroup.procs`)}`, `exec ${launch}`].join(
      '\n',
    );
  if (!paths.socat || !paths.socatLibraries)
    throw new Error(`container ${spec.id}: a terminal needs socat`);
  const relay = terminalRelay(
    [
      'mkdir -p /dev/pts',
      `mount -t devpts -o ${DEVPTS_OPTIONS} devpts /dev/pts`,
      'mount --bind /dev/pts/ptmx /dev/ptmx',
    ],
    launch,
    { socat: paths.socat, socatLibraries: paths.socatLibraries },
  );
  return [
    `echo $$ > ${shellQuote(`${paths.cgroupDir}/cgroup.procs`)}`,
    `exec /bin/unshare -m --propagation private /bin/sh -c ${shellQuote(relay)}`,
  ].join('\n');
}

const DEVPTS_OPTIONS = 'newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec';

/**
 * The shell script (run in a private mount namespace) that makes /dev/ptmx
 * the container's with `setUp`, then has socat run `command` on a new pty
 * and relay it to the agent's pipes. busybox has no `script`; socat is in
 * the guest already (vsock). socat exits 0 whatever the process did, so the
 * shell around the process writes its status to TERMINAL_STATUS_FD (closed
 * for the process itself).
 */
export function terminalRelay(
  setUp: string[],
  command: string,
  paths: { socat: string; socatLibraries: string },
): string {
  const wrapped = `${command} ${TERMINAL_STATUS_FD}>&-; echo $? >&${TERMINAL_STATUS_FD}`;
  return [
    ...setUp,
    // socat's address syntax treats , : and quotes specially: the command reaches its shell by environment.
    `exec env LD_LIBRARY_PATH=${shellQuote(paths.socatLibraries)} EDGEBOX_TTY_COMMAND=${shellQuote(wrapped)} ` +
      // -t: after stdin ends, keep relaying output until the process is gone, as runc's console does.
      // socat strips unescaped double quotes from an address; \" reaches the shell as ".
      `${shellQuote(paths.socat)} -t 1000000000 STDIO 'SYSTEM:eval \\"$EDGEBOX_TTY_COMMAND\\",pty,setsid,ctty,stderr'`,
  ].join('\n');
}

/** The command that joins every namespace and the root of the container's PID 1 and runs `process`. */
function enterContainer(process: ProcessSpec, initPid: number): string {
  const cwd = `/proc/${initPid}/root${process.cwd}`;
  return [
    ...rlimitCommands(process.rlimits ?? []),
    `exec ${envPrefix(process)} /bin/nsenter -t ${initPid} -m -u -i -p -r -w${shellQuote(cwd)} ` +
      `-S ${process.user.uid} -G ${process.user.gid} -- ${shellWords(process.args)}`,
  ].join('\n');
}

/** Exec: join the cgroup, then every namespace and the root of the container's PID 1. */
export function containerExecScript(
  process: ProcessSpec,
  paths: { cgroupDir: string; initPid: number },
): string {
  return [
    `echo $$ > ${shellQuote(`${paths.cgroupDir}/cgroup.procs`)}`,
    enterContainer(process, paths.initPid),
  ].join('\n');
}

/** The file descriptor a terminal process's shell writes its exit status to. */
export const TERMINAL_STATUS_FD = 3;

/**
 * Exec on a pseudo-terminal of the container's own devpts: the relay runs in
 * a private copy of the container's mount namespace where the container's
 * devpts is bound over the guest's /dev/pts and /dev/ptmx (socat opens those);
 * the process itself then enters the real namespaces as any exec does,
 * holding the pty as its controlling terminal.
 */
export function containerTerminalExecScript(
  process: ProcessSpec,
  paths: {
    cgroupDir: string;
    initPid: number;
    rootfs: string;
    socat: string;
    socatLibraries: string;
  },
): string {
  const relay = terminalRelay(
    [
      'mkdir -p /dev/pts',
      `mount --bind ${shellQuote(`${paths.rootfs}/dev/pts`)} /dev/pts`,
      'mount --bind /dev/pts/ptmx /dev/ptmx',
    ],
    // A subshell: its exec replaces it, not the shell that reports the status.
    `(${enterContainer(process, paths.initPid)})`,
    paths,
  );
  return [
    `echo $$ > ${shellQuote(`${paths.cgroupDir}/cgroup.procs`)}`,
    `exec /bin/nsenter -t ${paths.initPid} -m -- /bin/unshare -m --propagation private /bin/sh -c ${shellQuote(relay)}`,
  ].join('\n');
}
