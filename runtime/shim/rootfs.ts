import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../process/run-command.ts';
import { mountsUnder } from '../sharing/share.ts';

export interface RootfsMount {
  type: string;
  source: string;
  options: string[];
}

/**
 * Mounts the snapshotter's mounts for a container (overlayfs from the
 * overlayfs snapshotter, a bind from the native one) at `<bundle>/rootfs`,
 * as runc's shim does; the sandbox then shares that directory with the VM.
 */
export async function mountRootfs(bundle: string, mounts: readonly RootfsMount[]): Promise<string> {
  const target = join(bundle, 'rootfs');
  await mkdir(target, { recursive: true });
  for (const mount of mounts) {
    const options = mount.options.join(',');
    await runCommand('mount', [
      '-t',
      mount.type,
      ...(options ? ['-o', options] : []),
      '--',
      mount.source,
      target,
    ]);
  }
  return target;
}

/** Unmounts whatever is mounted at `<bundle>/rootfs`; no error when nothing is. */
export async function unmountRootfs(bundle: string): Promise<void> {
  const target = join(bundle, 'rootfs');
  for (const mount of (await mountsUnder(target)).sort((a, b) => b.length - a.length)) {
    await runCommand('umount', ['--lazy', mount]).catch(() => undefined);
  }
  await rmdir(target).catch(() => undefined);
}
