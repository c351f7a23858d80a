import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const EDGEBOX = fileURLToPath(new URL('../../bin/edgebox.js', import.meta.url));
const QEMU = 'qemu-system-x86_64';

function onPath(binary: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => existsSync(join(dir, binary)));
}

/** Why the microVM act cannot run on this machine, or undefined when it can. */
export function sandboxUnavailable(): string | undefined {
  if (!onPath(QEMU)) {
    return `${QEMU} is not installed (Debian: apt-get install qemu-system-x86 qemu-system-common busybox-static)`;
  }
  if (process.getuid?.() !== 0) return 'starting a sandbox needs root (mounts, virtiofsd, cgroups)';
  if (!existsSync('/bin/busybox'))
    return 'no static busybox for the container (apt-get install busybox-static)';
  return undefined;
}

export interface SandboxResult {
  guestKernel: string;
  hostKernel: string;
}

/**
 * Runs `uname -r` as an untrusted container with `edgebox sandbox run` (the
 * CLI in its own process: the demo does not import the runtime), in a root
 * file system of one static busybox. The first run builds the guest image
 * (Debian's cloud kernel; about half a minute), later runs find it cached.
 */
export async function unameInSandbox(): Promise<SandboxResult | Error> {
  const rootfs = mkdtempSync(join(tmpdir(), 'edgebox-demo-rootfs-'));
  try {
    mkdirSync(join(rootfs, 'bin'));
    copyFileSync('/bin/busybox', join(rootfs, 'bin/busybox'));
    const out = await new Promise<string | Error>((resolve) => {
      execFile(
        process.execPath,
        [EDGEBOX, 'sandbox', 'run', '--rootfs', rootfs, '--', '/bin/busybox', 'uname', '-r'],
        { encoding: 'utf8', timeout: 300_000 },
        (err, stdout, stderr) =>
          resolve(
            err ? new Error(`edgebox sandbox run failed: ${stderr.trim() || err.message}`) : stdout,
          ),
      );
    });
    if (out instanceof Error) return out;
    return { guestKernel: out.trim(), hostKernel: release() };
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
}
