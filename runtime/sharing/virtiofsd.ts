import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { runCommand } from '../process/run-command.ts';
import type { ProcessTracker, TrackedProcess } from '../process/tracker.ts';

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
export function virtiofsdArgs(daemon: Virtiofsd, sourceDir: string, socketPath: string): string[] {
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
      ]
    : [
        `--socket-path=${socketPath}`,
        '-o',
        `source=${sourceDir}`,
        '-o',
        'cache=auto',
        '-o',
        'modcaps=-mknod',
      ];
}

/** Starts one virtiofsd for a sandbox's share and resolves once its socket exists. */
export async function startVirtiofsd(
  processes: ProcessTracker,
  sourceDir: string,
  socketPath: string,
  timeoutMs = 10_000,
): Promise<TrackedProcess> {
  const daemon = await findVirtiofsd();
  const tracked = await processes.spawn(
    'virtiofsd',
    daemon.path,
    virtiofsdArgs(daemon, sourceDir, socketPath),
  );
  let stderr = '';
  tracked.child.stderr?.on(
    'data',
    (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4096)),
  );
  tracked.child.stdout?.resume();
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if ((await stat(socketPath).catch(() => undefined))?.isSocket()) return tracked;
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
