import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, open, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../process/run-command.ts';
import type { ProcessTracker, TrackedProcess } from '../process/tracker.ts';
import { mappedRoot, writeIdMapHelpers, type IdMap } from './id-map.ts';
import { setidFilterProgram } from './setid-filter.ts';

/** The fd on which bwrap finds the setuid/setgid filter (setid-filter.ts). */
const SETID_FILTER_FD = 3;

/**
 * File descriptors virtiofsd may hold. It keeps one per inode the guest has
 * looked up and one per open file; left alone it raises its own limit to about
 * a million, so one guest could pin that many host fds. Past the limit the
 * guest's opens and lookups fail with EMFILE; the host is not touched.
 */
export const DEFAULT_VIRTIOFSD_FD_LIMIT = 16_384;

/** The C virtiofsd's lock directory; each sandbox's virtiofsd sees its own there. */
const C_VIRTIOFSD_LOCK_DIR = '/run/virtiofsd';

/** The Rust virtiofsd (own package on newer distributions) or QEMU's C one (Debian 12). */
export interface Virtiofsd {
  path: string;
  flavour: 'rust' | 'c';
}

const RUST_PATHS = ['/usr/libexec/virtiofsd', '/usr/bin/virtiofsd', '/usr/local/bin/virtiofsd'];
const C_PATHS = ['/usr/lib/qemu/virtiofsd', '/usr/libexec/qemu/virtiofsd'];

let found: Promise<Virtiofsd> | undefined;

/** Finds a virtiofsd, preferring the Rust one; tells the two apart by their options. */
export function findVirtiofsd(): Promise<Virtiofsd> {
  found ??= (async () => {
    for (const path of [...RUST_PATHS, ...C_PATHS]) {
      if (!existsSync(path)) continue;
      const help = await runCommand(path, ['--help']).catch((err: Error) => ({
        stdout: err.message,
        stderr: '',
      }));
      return { path, flavour: /--shared-dir/.test(help.stdout + help.stderr) ? 'rust' : 'c' };
    }
    throw new Error(
      `no virtiofsd found (looked at ${[...RUST_PATHS, ...C_PATHS].join(', ')}; install qemu-system-common or virtiofsd)`,
    );
  })();
  return found;
}

/**
 * Both run in their own namespaces (`sandbox=namespace`, the default of the C
 * one) with xattrs off (the default), so a guest cannot set file
 * capabilities or security labels on host files. Without CAP_MKNOD a guest
 * cannot leave device nodes in a writable rootfs or volume for a host
 * process to open later; FIFOs and sockets need no capability.
 */
export function virtiofsdArgs(
  daemon: Virtiofsd,
  sourceDir: string,
  socketPath: string,
  fdLimit = DEFAULT_VIRTIOFSD_FD_LIMIT,
): string[] {
  return daemon.flavour === 'rust'
    ? [
        '--socket-path',
        socketPath,
        '--shared-dir',
        sourceDir,
        '--cache',
        'auto',
        '--sandbox',
        'namespace',
        '--modcaps=-mknod',
        `--rlimit-nofile=${fdLimit}`,
      ]
    : [
        `--socket-path=${socketPath}`,
        '-o',
        `source=${sourceDir}`,
        '-o',
        'cache=auto',
        '-o',
        'modcaps=-mknod',
        `--rlimit-nofile=${fdLimit}`,
      ];
}

/**
 * virtiofsd's command line inside a user namespace whose ids are the guest's
 * `map`: the guest's root is root there (virtiofsd needs its capabilities to
 * act for any guest user) and an unprivileged id on the host, so every file
 * the guest makes is owned by a mapped id and a setuid bit it sets makes a
 * program run as that id, not as host root. Host files owned by ids outside
 * the map (host root's) are, to the guest, owned by nobody: readable as their
 * mode allows, never writable through ownership or capabilities. The mount
 * namespace beside it (a slave of the host's, as every mount namespace of a
 * less privileged user namespace is) gives the C virtiofsd a lock directory
 * of its own. bubblewrap loads the setuid/setgid filter (setid-filter.ts)
 * from fd 3 last, binding the whole tree as it is (mounts made later still
 * reach virtiofsd), and kills virtiofsd if it dies.
 */
export function userNamespaceCommand(
  map: IdMap,
  lockDir: string,
  command: string,
  args: readonly string[],
): { command: string; args: string[] } {
  const range = `${map.hostBase},0,${map.count}`;
  return {
    command: 'unshare',
    args: [
      '--user',
      '--mount',
      '--propagation=unchanged',
      `--map-users=${range}`,
      `--map-groups=${range}`,
      '--setuid=0',
      '--setgid=0',
      '--',
      'sh',
      '-c',
      // The id change cleared the parent-death signal: setpriv sets it again.
      'mount --bind "$0" /run/virtiofsd && exec setpriv --pdeathsig=KILL -- ' +
        `bwrap --dev-bind / / --die-with-parent --seccomp ${SETID_FILTER_FD} -- "$@"`,
      lockDir,
      command,
      ...args,
    ],
  };
}

export interface VirtiofsdOptions {
  /** The share to serve; its path must be traversable by the mapped ids. */
  sourceDir: string;
  /** A directory of the runtime's own (root's, not writable by the guest's ids). */
  workDir: string;
  idMap: IdMap;
  fdLimit?: number;
  /** Who may connect to the socket (the VMM's unprivileged id); root when unset. */
  clientUid?: number;
  timeoutMs?: number;
}

/**
 * Starts one virtiofsd for a sandbox's share, in the guest's user namespace,
 * and resolves with it and its socket once the socket exists.
 */
export async function startVirtiofsd(
  processes: ProcessTracker,
  options: VirtiofsdOptions,
): Promise<{ process: TrackedProcess; socketPath: string }> {
  const { sourceDir, workDir, idMap } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const daemon = await findVirtiofsd();
  const helpers = join(workDir, 'id-map');
  await writeIdMapHelpers(helpers);
  // virtiofsd, as the guest's root, makes its socket and lock file in a directory of its own.
  const own = join(workDir, 'virtiofsd');
  const lockDir = join(own, 'lock');
  await mkdir(lockDir, { recursive: true, mode: 0o700 });
  for (const dir of [own, lockDir]) await chown(dir, mappedRoot(idMap), mappedRoot(idMap));
  // The VMM, another unprivileged id, passes through to the socket.
  await chmod(own, 0o711);
  await mkdir(C_VIRTIOFSD_LOCK_DIR, { recursive: true, mode: 0o755 });
  const socketPath = join(own, 'virtiofsd.sock');
  const filterPath = join(workDir, 'setid-filter.bpf');
  await writeFile(filterPath, setidFilterProgram(), { mode: 0o600 });
  const wrapped = userNamespaceCommand(
    idMap,
    lockDir,
    daemon.path,
    virtiofsdArgs(daemon, sourceDir, socketPath, options.fdLimit),
  );
  const filter = await open(filterPath, 'r');
  const tracked = await processes
    .spawn('virtiofsd', wrapped.command, wrapped.args, {
      env: { ...process.env, PATH: `${helpers}:${process.env.PATH ?? '/usr/bin:/bin'}` },
      stdio: ['ignore', 'pipe', 'pipe', filter.fd],
    })
    .finally(() => filter.close());
  let stderr = '';
  tracked.child.stderr?.on(
    'data',
    (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4096)),
  );
  tracked.child.stdout?.resume();
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if ((await stat(socketPath).catch(() => undefined))?.isSocket()) {
      if (options.clientUid !== undefined) await chown(socketPath, options.clientUid, 0);
      return { process: tracked, socketPath };
    }
    if (tracked.exit) {
      throw new Error(
        `virtiofsd for ${sourceDir} exited before listening: ${stderr.trim() || `code ${tracked.exit.code}`}`,
      );
    }
    if (performance.now() > deadline) {
      throw new Error(
        `virtiofsd for ${sourceDir} did not create ${socketPath} within ${timeoutMs} ms`,
      );
    }
    // virtiofsd has no readiness notification other than the socket appearing.
    await new Promise((r) => setTimeout(r, 2));
  }
}
