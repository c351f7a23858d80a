import { chmod, copyFile, mkdir, mkdtemp, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../process/run-command.ts';

/** A container root file system made of Debian's static busybox and its applet links. */
export async function makeBusyboxRootfs(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'edgebox-rootfs-'));
  // mkdtemp makes the directory 0700; a root file system must be traversable by every user.
  await chmod(root, 0o755);
  for (const dir of ['bin', 'etc', 'proc', 'dev', 'tmp', 'data']) await mkdir(join(root, dir));
  await chmod(join(root, 'tmp'), 0o1777);
  await copyFile('/usr/bin/busybox', join(root, 'bin', 'busybox'));
  const { stdout } = await runCommand('/usr/bin/busybox', ['--list']);
  for (const applet of stdout.split('\n')) {
    if (applet && applet !== 'busybox') await symlink('busybox', join(root, 'bin', applet));
  }
  await writeFile(join(root, 'etc', 'message'), 'hello from the rootfs\n');
  return root;
}
