import { chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from '../process/run-command.ts';
import { mountsUnder, unmount } from './share.ts';

/**
 * The sandbox's writable disk: a sparse ext4 image of `sizeMiB`, loop-mounted
 * (nosuid, nodev) at `mountPoint`, holding the upper layer of every writable
 * container rootfs. The guest can fill it, and gets ENOSPC, but the host's
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
    const base = join(this.mountPoint, containerId);
    const upperDir = join(base, 'upper');
    const workDir = join(base, 'work');
    await rm(base, { recursive: true, force: true });
    for (const dir of [base, upperDir, workDir]) {
      await mkdir(dir, { mode: 0o755 });
      await chown(dir, this.#owner, this.#owner);
    }
    return { upperDir, workDir };
  }

  /** Drops a container's layers (its rootfs overlay is unmounted by then). */
  async removeLayers(containerId: string): Promise<void> {
    await rm(join(this.mountPoint, containerId), { recursive: true, force: true });
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
