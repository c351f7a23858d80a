import { constants } from 'node:fs';
import { chown, lstat, mkdir, open, realpath, rm, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { prepareMountPoints, type MountPoint } from './mount-points.ts';
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

  /**
   * An overlay's upper and work directories for one container over the image
   * at `lowerDir`, new and owned by the guest's root, with its volumes' mount
   * points already in the upper one (see prepareMountPoints).
   */
  async layers(
    containerId: string,
    lowerDir: string,
    mountPoints: readonly MountPoint[],
  ): Promise<{ upperDir: string; workDir: string }> {
    const base = this.#containerDir(containerId);
    const upperDir = join(base, 'upper');
    const workDir = join(base, 'work');
    await rm(base, { recursive: true, force: true });
    await mkdir(dirname(base), { recursive: true, mode: 0o711 });
    for (const dir of [base, upperDir, workDir]) await this.#makeGuestDir(dir);
    await prepareMountPoints(lowerDir, upperDir, mountPoints, this.#owner);
    return { upperDir, workDir };
  }

  /**
   * Runs `use` with the host path of a pod volume's directory, made empty,
   * owned by the guest's root, on first use: the pod's (`volumes/<name>`,
   * kept until teardown, so a container restarted sees what its predecessor
   * wrote) or, given `containerId`, that container's own, removed with its
   * layers. `name` is one path segment (config.ts's podVolumeNameSchema).
   * Given `subPath` (config.ts's podVolumeSubPathSchema), the directory
   * within it, made as the guest's root would: the guest writes the volume
   * and may have planted a symlink there, so a symlink on the way is an
   * error, and the path handed to `use` is the directory opened without
   * following one (/proc/<pid>/fd/<n>, valid until `use` settles), not a
   * path a swapped component could redirect.
   */
  async withVolume<T>(
    volume: { name: string; containerId?: string | undefined; subPath?: string | undefined },
    use: (hostPath: string) => Promise<T>,
  ): Promise<T> {
    const { name, containerId, subPath } = volume;
    const parent =
      containerId === undefined
        ? join(this.mountPoint, 'volumes')
        : join(this.#containerDir(containerId), 'volumes');
    const dir = join(parent, name);
    if (dirname(dir) !== parent) throw new Error(`pod volume ${name}: not one path segment`);
    await mkdir(parent, { recursive: true, mode: 0o711 });
    if (!(await stat(dir).catch(() => undefined))?.isDirectory()) await this.#makeGuestDir(dir);
    const what = `pod volume ${name}${subPath === undefined ? '' : ` subPath ${subPath}`}`;
    const segments = subPath === undefined ? [] : subPath.split('/');
    if (subPath !== undefined && relative(dir, join(dir, subPath)) !== subPath)
      throw new Error(`${what}: not a relative path within the volume`);
    for (const [index] of segments.entries()) {
      const component = segments.slice(0, index + 1).join('/');
      const info = await lstat(join(dir, component)).catch(() => undefined);
      if (!info) {
        // As the guest's root, from within the volume: a component swapped
        // for a symlink since the check makes nothing the guest could not.
        await runCommand(
          'setpriv',
          [
            `--reuid=${this.#owner}`,
            `--regid=${this.#owner}`,
            '--clear-groups',
            '--',
            'mkdir',
            '-p',
            '-m',
            '755',
            '--',
            segments.join('/'),
          ],
          { cwd: dir },
        );
        break;
      }
      if (info.isSymbolicLink())
        throw new Error(`${what}: ${component} is a symlink in the volume, not followed`);
      if (!info.isDirectory()) throw new Error(`${what}: ${component} is not a directory`);
    }
    const expected = join(await realpath(dir), ...segments);
    const handle = await open(
      join(dir, ...segments),
      constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW,
    ).catch((err: unknown) => {
      throw new Error(`${what}: cannot open it without following a symlink`, { cause: err });
    });
    try {
      const opened = `/proc/${process.pid}/fd/${handle.fd}`;
      if ((await realpath(opened)) !== expected)
        throw new Error(`${what}: a component was swapped for a symlink in the volume`);
      return await use(opened);
    } finally {
      await handle.close();
    }
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
