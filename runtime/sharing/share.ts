import { mkdir, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { runCommand } from '../process/run-command.ts';
import { readMountInfo } from './mountinfo.ts';

/**
 * The one directory a sandbox's virtiofsd serves, and the host's private
 * view of the same tree. The host makes directories and bind mounts only
 * through `hostDir`, a bind of itself made shared; `dir` is a read-only bind
 * of it (a peer, so mounts added later propagate into it and into
 * virtiofsd's namespace). The guest can write inside a writable rootfs or
 * volume but cannot create, rename or replace anything around them, so no
 * path the host later unmounts or removes can become a symlink out of the
 * share. Every host path comes in through a private staging mount: a bind
 * of a path on a shared mount (systemd makes `/` shared) would otherwise be
 * a peer of it, so a mount the host made there later would appear in the
 * guest, and unmounting the bind would unmount the host's too. Read-only
 * volumes are made read-only in that staging mount: a remount does not
 * propagate, so remounting in place would leave virtiofsd's copy writable.
 * A writable rootfs is an overlay whose upper layer the caller bounds; its
 * lower layer is read, never written. Pod volumes come in as binds of
 * directories on the caller's bounded disk. Nothing else of the host is reachable.
 */
export class SandboxShare {
  readonly dir: string;
  readonly #hostDir: string;
  readonly #stagingDir: string;
  readonly #mounts: string[] = [];
  #prepared = false;
  #exported = false;

  constructor(dir: string) {
    this.dir = dir;
    this.#hostDir = `${dir}.host`;
    this.#stagingDir = `${dir}.staging`;
  }

  /** Mount points made by bind(), as the host sees them. */
  get mounts(): readonly string[] {
    return this.#mounts;
  }

  async prepare(): Promise<void> {
    // Readable by the guest's unprivileged host ids, which virtiofsd runs as.
    await mkdir(this.#hostDir, { recursive: true, mode: 0o755 });
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await runCommand('mount', ['--bind', this.#hostDir, this.#hostDir]);
    this.#prepared = true;
    await runCommand('mount', ['--make-private', this.#hostDir]);
    await runCommand('mount', ['--make-shared', this.#hostDir]);
    await runCommand('mount', ['--bind', this.#hostDir, this.dir]);
    this.#exported = true;
    await runCommand('mount', ['-o', 'remount,bind,ro', this.dir]);
  }

  /**
   * Binds `hostPath` at `path` (relative to the share). Directories only for
   * rootfs; volumes may be files. Returns the share-relative path.
   */
  async bind(hostPath: string, path: string, readOnly: boolean): Promise<string> {
    const target = join(this.#hostDir, path);
    const shared = relative(this.#hostDir, target);
    if (shared === '' || shared.startsWith('..'))
      throw new Error(`share path ${path} escapes the share`);
    // A relative path could also read as an option of mount(8) ("-o...", "--rbind").
    if (!isAbsolute(hostPath)) throw new Error(`cannot share ${hostPath}: not an absolute path`);
    const info = await stat(hostPath).catch(() => undefined);
    if (!info) throw new Error(`cannot share ${hostPath}: it does not exist`);
    await makeMountPoint(target, info.isDirectory());
    await makeMountPoint(this.#stagingDir, info.isDirectory());
    // As given: a /proc/<pid>/fd/<n> source is the directory opened, not a path resolved again.
    await runCommand('mount', ['--no-canonicalize', '--bind', hostPath, this.#stagingDir]);
    try {
      await runCommand('mount', ['--make-private', this.#stagingDir]);
      // A bind of a read-only mount is read-only, and so is every copy propagated from it.
      if (readOnly) await runCommand('mount', ['-o', 'remount,bind,ro', this.#stagingDir]);
      await runCommand('mount', ['--bind', this.#stagingDir, target]);
      this.#mounts.push(target);
    } finally {
      await unmount(this.#stagingDir);
    }
    return shared;
  }

  /**
   * Mounts at `path` (relative to the share) an overlay of `lowerDir` (read,
   * never written) under `upperDir` and `workDir`, which the caller made on a
   * size-bounded file system, owned by the guest's root. An overlay takes its
   * layers as they are when mounted and follows no mount made under them
   * later. Returns the share-relative path.
   */
  async overlay(
    lowerDir: string,
    layers: { upperDir: string; workDir: string },
    path: string,
  ): Promise<string> {
    const target = join(this.#hostDir, path);
    const shared = relative(this.#hostDir, target);
    if (shared === '' || shared.startsWith('..'))
      throw new Error(`share path ${path} escapes the share`);
    for (const dir of [lowerDir, layers.upperDir, layers.workDir]) {
      if (!isAbsolute(dir)) throw new Error(`cannot share ${dir}: not an absolute path`);
      // Separators of overlay's mount options; no escaping is portable across kernels.
      if (/[,:\\]/.test(dir))
        throw new Error(`cannot share ${dir}: a comma, colon or backslash in the path`);
    }
    if (!(await stat(lowerDir).catch(() => undefined))?.isDirectory())
      throw new Error(`cannot share ${lowerDir}: not a directory`);
    await makeMountPoint(target, true);
    await runCommand('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${lowerDir},upperdir=${layers.upperDir},workdir=${layers.workDir}`,
      target,
    ]);
    this.#mounts.push(target);
    return shared;
  }

  /** Unmounts everything bound at or below `path` (relative to the share), newest first. */
  async unbind(path: string): Promise<void> {
    const base = join(this.#hostDir, path);
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
    if (this.#exported) {
      try {
        await unmount(this.dir);
        this.#exported = false;
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    if (this.#prepared) {
      try {
        await unmount(this.#hostDir);
        this.#prepared = false;
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    if (errors.length > 0)
      throw new Error(`cannot tear down share ${this.dir}: ${errors.join('; ')}`);
    // Only empty mount points are left once everything is unmounted; never recurse into a mount.
    for (const dir of [this.dir, this.#hostDir, this.#stagingDir]) {
      const left = await mountsUnder(dir);
      if (left.length > 0) throw new Error(`share ${dir} still has mounts: ${left.join(', ')}`);
    }
    for (const dir of [this.dir, this.#hostDir, this.#stagingDir])
      await rm(dir, { recursive: true, force: true });
  }
}

async function makeMountPoint(path: string, directory: boolean): Promise<void> {
  if (directory) {
    await mkdir(path, { recursive: true });
    return;
  }
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, '', { flag: 'a' });
}

export async function unmount(target: string): Promise<void> {
  try {
    await runCommand('umount', [target]);
  } catch (err) {
    // A mount below it came from elsewhere: a lazy unmount would take that one
    // (and every peer of it, the host's included) along. Leave all of it.
    const below = (await mountsUnder(target)).filter((m) => m !== target);
    if (below.length > 0) {
      throw new Error(`cannot unmount ${target}: mounts below it (${below.join(', ')})`, {
        cause: err,
      });
    }
    // Busy (a helper still holds it): detach now, the kernel frees it when released.
    await runCommand('umount', ['--lazy', target]);
  }
  const info = await stat(target).catch(() => undefined);
  if (info?.isDirectory()) await rmdir(target).catch(() => undefined);
  else if (info) await rm(target, { force: true });
}

/** Mount points at or below `dir`, from /proc/self/mountinfo. */
export async function mountsUnder(dir: string): Promise<string[]> {
  return (await readMountInfo())
    .map((entry) => entry.mountPoint)
    .filter((point) => point === dir || point.startsWith(`${dir}/`));
}
