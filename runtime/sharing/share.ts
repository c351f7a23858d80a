import { mkdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { runCommand } from '../process/run-command.ts';

/**
 * The one directory a sandbox's virtiofsd serves. It is a bind mount of
 * itself made shared, so bind mounts added later (a container's rootfs, its
 * volumes) propagate into virtiofsd's private mount namespace too. Read-only
 * volumes are remounted read-only on the host, so the guest kernel cannot
 * write them however it behaves. Nothing else of the host is reachable.
 */
export class SandboxShare {
  readonly dir: string;
  readonly #mounts: string[] = [];
  #prepared = false;

  constructor(dir: string) {
    this.dir = dir;
  }

  get mounts(): readonly string[] {
    return this.#mounts;
  }

  async prepare(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await runCommand('mount', ['--bind', this.dir, this.dir]);
    this.#prepared = true;
    await runCommand('mount', ['--make-private', this.dir]);
    await runCommand('mount', ['--make-shared', this.dir]);
  }

  /**
   * Binds `hostPath` at `path` (relative to the share). Directories only for
   * rootfs; volumes may be files. Returns the share-relative path.
   */
  async bind(hostPath: string, path: string, readOnly: boolean): Promise<string> {
    const target = join(this.dir, path);
    if (relative(this.dir, target).startsWith('..'))
      throw new Error(`share path ${path} escapes the share`);
    const info = await stat(hostPath).catch(() => undefined);
    if (!info) throw new Error(`cannot share ${hostPath}: it does not exist`);
    if (info.isDirectory()) await mkdir(target, { recursive: true });
    else {
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, '', { flag: 'a' });
    }
    await runCommand('mount', ['--bind', hostPath, target]);
    this.#mounts.push(target);
    if (readOnly) await runCommand('mount', ['-o', 'remount,bind,ro', target]);
    return relative(this.dir, target);
  }

  /** Unmounts everything bound at or below `path` (relative to the share), newest first. */
  async unbind(path: string): Promise<void> {
    const base = join(this.dir, path);
    for (const target of [...this.#mounts].reverse()) {
      if (target !== base && !target.startsWith(`${base}/`)) continue;
      await unmount(target);
      this.#mounts.splice(this.#mounts.indexOf(target), 1);
    }
    await rm(base, { recursive: false, force: true }).catch(() => undefined);
  }

  /** Unmounts everything, newest first, then the share itself, and removes the directory. */
  async teardown(): Promise<void> {
    const errors: string[] = [];
    for (const target of [...this.#mounts].reverse()) {
      try {
        await unmount(target);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    this.#mounts.length = 0;
    if (this.#prepared) {
      try {
        await unmount(this.dir);
        this.#prepared = false;
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    if (errors.length > 0)
      throw new Error(`cannot tear down share ${this.dir}: ${errors.join('; ')}`);
    // Only empty mount points are left once everything is unmounted; never recurse into a mount.
    const left = await mountsUnder(this.dir);
    if (left.length > 0) throw new Error(`share ${this.dir} still has mounts: ${left.join(', ')}`);
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function unmount(target: string): Promise<void> {
  try {
    await runCommand('umount', [target]);
  } catch {
    // Busy (a helper still holds it): detach now, the kernel frees it when released.
    await runCommand('umount', ['--lazy', target]);
  }
  const info = await stat(target).catch(() => undefined);
  if (info?.isDirectory()) await rmdir(target).catch(() => undefined);
  else if (info) await rm(target, { force: true });
}

/** Mount points at or below `dir`, from /proc/self/mountinfo (octal escapes decoded). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const point = field.replace(/\\([0-7]{3})/g, (_m, o: string) =>
      String.fromCharCode(parseInt(o, 8)),
    );
    if (point === dir || point.startsWith(`${dir}/`)) out.push(point);
  }
  return out;
}
