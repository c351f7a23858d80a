import { chown, mkdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runCommand } from '../process/run-command.ts';
import { mountsUnder, unmount } from './share.ts';

/**
 * The sandbox's writable disk: a sparse ext4 image of `sizeMiB`, loop-mounted
 * (nosuid, nodev) at `mountPoint`, holding the upper layer of every writable
 * container rootfs (`containers/<id>`) and the pod's volumes (`volumes/`). The guest can fill it, and gets ENOSPC, but the host's
 * file system gives up at most `sizeMiB` to it. Its root directory and the
 * layers belong to the guest's root as mapped on the host.
 */
export class SandboxDisk {
  readonly imagePath: string;
  readonly mountPoint: string;
  readonly #owner: number;
  #created = false;
  #mounted = false;

  constructor(imagePath: string, mountPoint: string, owner: number) {
    this.imagePath = imagePath;
    this.mountPoint = mountPoint;
    this.#owner = owner;
  }

  async create(sizeMiB: number): Promise<void> {
    this.#created = true;
    await runCommand('truncate', ['--size', `${sizeMiB}M`, this.imagePath]);
    await runCommand('mkfs.ext4', [
      '-q',
      '-F',
      // No blocks kept for host root: the bound is the guest's whole budget.
      '-m',
      '0',
      '-E',
      `root_owner=${this.#owner}:${this.#owner},lazy_itable_init=1,lazy_journal_init=1`,
      this.imagePath,
    ]);
    await mkdir(this.mountPoint, { recursive: true, mode: 0o700 });
    await runCommand('mount', ['-o', 'loop,nosuid,nodev', this.imagePath, this.mountPoint]);
    this.#mounted = true;
  }

  /** An overlay's upper and work directories for one container, new and owned by the guest's root. */
  async layers(containerId: string): Promise<{ upperDir: string; workDir: string }> {
    const base = this.#containerDir(containerId);
    const upperDir = join(base, 'upper');
    const workDir = join(base, 'work');
    await rm(base, { recursive: true, force: true });
    await mkdir(dirname(base), { recursive: true, mode: 0o711 });
    for (const dir of [base, upperDir, workDir]) await this.#makeGuestDir(dir);
    return { upperDir, workDir };
  }

  /**
   * A pod volume's directory, made empty, owned by the guest's root, on first
   * use: the pod's (`volumes/<name>`, kept until teardown, so a container
   * restarted sees what its predecessor wrote) or, given `containerId`, that
   * container's own, removed with its layers. `name` is one path segment
   * (config.ts's podVolumeNameSchema).
   */
  async volume(name: string, containerId?: string): Promise<string> {
    const parent =
      containerId === undefined
        ? join(this.mountPoint, 'volumes')
        : join(this.#containerDir(containerId), 'volumes');
    const dir = join(parent, name);
    if (dirname(dir) !== parent) throw new Error(`pod volume ${name}: not one path segment`);
    await mkdir(parent, { recursive: true, mode: 0o711 });
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) await this.#makeGuestDir(dir);
    return dir;
  }

  /** Drops a container's layers and own volumes (its mounts of them are gone by then). */
  async removeLayers(containerId: string): Promise<void> {
    await rm(this.#containerDir(containerId), { recursive: true, force: true });
  }

  #containerDir(containerId: string): string {
    return join(this.mountPoint, 'containers', containerId);
  }

  async #makeGuestDir(dir: string): Promise<void> {
    await mkdir(dir, { mode: 0o755 });
    await chown(dir, this.#owner, this.#owner);
  }

  /** Unmounts (the loop device goes with it) and deletes the image. */
  async teardown(): Promise<void> {
    if (this.#mounted) {
      await unmount(this.mountPoint);
      this.#mounted = false;
    }
    if (!this.#created) return;
    const left = await mountsUnder(this.mountPoint);
    if (left.length > 0)
      throw new Error(`disk ${this.imagePath} still mounted at ${left.join(', ')}`);
    await rm(this.mountPoint, { recursive: true, force: true });
    await rm(this.imagePath, { force: true });
    this.#created = false;
  }
}
