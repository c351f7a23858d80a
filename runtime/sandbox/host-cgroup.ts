import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/**
 * A sandbox's cgroup on the host: QEMU, virtiofsd and the socat relays run in
 * it, so the host's accounting (kubelet's pod stats, `systemd-cgtop`) sees
 * what the VM costs, and a pod's limits set on its parent bound it. On cgroup
 * v2 one directory of the unified hierarchy; on v1 one in each of the
 * cpu, cpuacct, memory and pids hierarchies that are mounted (a combined
 * `cpu,cpuacct` mount counts once). Only directories this runtime created
 * are ever removed.
 */

/** `sandbox run`'s cgroups go under this one, as `edgebox/<sandbox id>`. */
export const DEFAULT_CGROUP_PARENT = 'edgebox';

const V1_CONTROLLERS = ['cpu', 'cpuacct', 'memory', 'pids'];
const V2_CONTROLLERS = ['cpu', 'memory', 'pids'];

/** A cgroup path from a hierarchy's root, `a/b/c`: no empty, `.` or `..` part. */
export function normalizeCgroupPath(path: string): string {
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.length === 0 || parts.some((p) => p === '.' || p === '..'))
    throw new Error(`cgroup path ${JSON.stringify(path)}: must name a cgroup below the root`);
  return parts.join('/');
}

/**
 * The cgroup path an OCI `linux.cgroupsPath` names: the cgroupfs form as it
 * is; the systemd form `slice:prefix:name` as systemd lays it out (runc
 * does the same): each dash of the slice opens one more level, and the unit
 * is `prefix-name.scope` in it.
 */
export function cgroupPathFromOci(cgroupsPath: string): string {
  const systemd = /^([^:/]*):([^:/]+):([^:/]+)$/.exec(cgroupsPath);
  if (!systemd) return normalizeCgroupPath(cgroupsPath);
  const [, slice, prefix, name] = systemd;
  return normalizeCgroupPath(`${expandSlice(slice || 'system.slice')}/${prefix}-${name}.scope`);
}

function expandSlice(slice: string): string {
  if (!slice.endsWith('.slice') || slice.includes('/'))
    throw new Error(`systemd slice ${JSON.stringify(slice)}: must be a name ending in .slice`);
  const base = slice.slice(0, -'.slice'.length);
  if (base === '-') return '';
  const parts = base.split('-');
  if (parts.some((p) => p === ''))
    throw new Error(`systemd slice ${JSON.stringify(slice)}: empty part between dashes`);
  return parts.map((_, i) => `${parts.slice(0, i + 1).join('-')}.slice`).join('/');
}

interface Hierarchy {
  mountPoint: string;
  /** The controllers the hierarchy carries (v1), or none named (v2's `0::` line). */
  controllers: string[];
}

/** The hierarchies a sandbox's cgroup is made in, and whether they are v2's one. */
export async function cgroupHierarchies(
  mountinfoText?: string,
): Promise<{ unified: boolean; hierarchies: Hierarchy[] }> {
  const text = mountinfoText ?? (await readFile('/proc/self/mountinfo', 'utf8'));
  const mounts = text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [before = '', after = ''] = line.split(' - ');
      const [type = '', , superOptions = ''] = after.split(' ');
      return { mountPoint: before.split(' ')[4] ?? '', type, options: superOptions.split(',') };
    });
  const v2 = mounts.find((m) => m.type === 'cgroup2' && m.mountPoint === '/sys/fs/cgroup');
  if (v2) return { unified: true, hierarchies: [{ mountPoint: v2.mountPoint, controllers: [] }] };
  const hierarchies = new Map<string, Hierarchy>();
  for (const controller of V1_CONTROLLERS) {
    const mount = mounts.find((m) => m.type === 'cgroup' && m.options.includes(controller));
    if (mount)
      hierarchies.set(mount.mountPoint, {
        mountPoint: mount.mountPoint,
        controllers: mount.options.filter((o) => V1_CONTROLLERS.includes(o)),
      });
  }
  if (hierarchies.size === 0)
    throw new Error('no cgroup hierarchy mounted (neither cgroup2 at /sys/fs/cgroup nor v1 ones)');
  return { unified: false, hierarchies: [...hierarchies.values()] };
}

/**
 * The cgroup.procs files of the cgroups process `pid` is in now, in the
 * hierarchies a sandbox's cgroup uses: writing the pid to them moves it back.
 */
export async function currentCgroupProcs(pid: number): Promise<string[]> {
  const { unified, hierarchies } = await cgroupHierarchies();
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').filter(Boolean);
  return hierarchies.map(({ mountPoint, controllers }) => {
    const line = lines
      .map((l) => /^\d+:([^:]*):(.*)$/.exec(l))
      .find(
        (m) => m && (unified ? m[1] === '' : m[1]!.split(',').some((c) => controllers.includes(c))),
      );
    if (!line) throw new Error(`process ${pid} is in no cgroup of ${mountPoint}`);
    return join(mountPoint, line[2]!, 'cgroup.procs');
  });
}

/** The run directory's record of the sandbox's cgroup (a CgroupRecord). */
export const CGROUP_RECORD_FILE = 'cgroup.json';

/**
 * Removes the cgroup a dead runtime's run directory records (gc, `shim
 * delete`), once its processes are gone: only the directories it created.
 */
export async function removeRecordedCgroup(runDir: string): Promise<void> {
  const text = await readFile(join(runDir, CGROUP_RECORD_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return;
  const record = cgroupRecordSchema.parse(JSON.parse(text));
  const created = record.created.filter((dir) => dir.startsWith('/sys/fs/cgroup/'));
  // Its directory in each hierarchy: what helpers' children still in it are killed from.
  const dirs = created.filter((dir) => dir.endsWith(`/${record.path}`));
  await HostCgroup.fromRecord(record.path, dirs, created).release();
}

const cgroupRecordSchema = z.object({ path: z.string(), created: z.array(z.string()) });

/** What a sandbox's run directory records of its cgroup, so gc can remove it later. */
export interface CgroupRecord {
  path: string;
  /** The directories this runtime made, parents before children. */
  created: string[];
}

export class HostCgroup {
  readonly path: string;
  /** The cgroup's directory in each hierarchy. */
  readonly dirs: readonly string[];
  readonly #created: string[];
  readonly #joined: { pid: number; home: string[] }[] = [];

  private constructor(path: string, dirs: string[], created: string[]) {
    this.path = path;
    this.dirs = dirs;
    this.#created = created;
  }

  /** Makes the cgroup `path` (and any parent missing) in every hierarchy. */
  static async create(path: string): Promise<HostCgroup> {
    const normalized = normalizeCgroupPath(path);
    const { unified, hierarchies } = await cgroupHierarchies();
    const created: string[] = [];
    const dirs: string[] = [];
    try {
      for (const { mountPoint } of hierarchies) {
        const parts = normalized.split('/');
        let dir = mountPoint;
        // A parent another sandbox made may go (its teardown) between our mkdirs: start over.
        for (let i = 0, restarts = 0; i < parts.length; i++) {
          // v2: a child has a controller only when its parent hands it down.
          if (unified) await enableV2Controllers(dir);
          const next = join(dir, parts[i]!);
          try {
            await mkdir(next);
            created.push(next);
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code === 'ENOENT' && restarts++ < 3) {
              [dir, i] = [mountPoint, -1];
              continue;
            }
            if (code !== 'EEXIST') throw err;
          }
          dir = next;
        }
        dirs.push(dir);
      }
    } catch (err) {
      await removeCgroupDirs(created).catch(() => undefined);
      throw new Error(`cannot create cgroup ${normalized}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return new HostCgroup(normalized, dirs, created);
  }

  /** The cgroup a dead runtime recorded (removeRecordedCgroup). */
  static fromRecord(path: string, dirs: string[], created: string[]): HostCgroup {
    return new HostCgroup(path, dirs, created);
  }

  get record(): CgroupRecord {
    return { path: this.path, created: [...this.#created] };
  }

  /** The files a process writes its pid to, to join the cgroup in every hierarchy. */
  get procsFiles(): string[] {
    return this.dirs.map((dir) => join(dir, 'cgroup.procs'));
  }

  async #members(): Promise<number[]> {
    const pids = new Set<number>();
    for (const file of this.procsFiles) {
      const text = await readFile(file, 'utf8').catch(() => '');
      for (const line of text.split('\n')) if (line) pids.add(Number(line));
    }
    return [...pids];
  }

  /** Moves process `pid` (all its threads) into the cgroup. */
  async add(pid: number): Promise<void> {
    for (const file of this.procsFiles) await writeFile(file, String(pid));
  }

  /**
   * Moves a process that outlives the sandbox (the shim) into the cgroup;
   * release() puts it back where it was before anything there is killed.
   */
  async join(pid: number): Promise<void> {
    const home = await currentCgroupProcs(pid);
    await this.add(pid);
    this.#joined.push({ pid, home });
  }

  /**
   * Removes what create() made. A cgroup of its own making is the sandbox's
   * alone: what is still in it once the helpers are reaped (virtiofsd's
   * forked server, ending on its parent-death signal) is killed and waited
   * for first, as systemd ends a unit's control group. Safe to call twice.
   */
  async release(): Promise<void> {
    for (const { pid, home } of this.#joined.splice(0)) {
      for (const procs of home) await writeFile(procs, String(pid)).catch(() => undefined);
    }
    if (this.dirs.every((dir) => this.#created.includes(dir))) {
      for (let round = 0; round < 400; round++) {
        const members = await this.#members();
        if (members.length === 0) break;
        for (const pid of members) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone already.
          }
        }
        // Not our children: the kernel takes them away on its own time.
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    await removeCgroupDirs(this.#created);
    this.#created.length = 0;
  }
}

/**
 * Removes cgroup directories made by this runtime, children first. A parent
 * another sandbox still uses (EBUSY) stays; the sandbox's own cgroup must go.
 */
export async function removeCgroupDirs(created: readonly string[]): Promise<void> {
  const leaves = new Set(created.filter((dir) => !created.some((d) => d.startsWith(`${dir}/`))));
  for (const dir of [...created].sort((a, b) => b.length - a.length)) {
    try {
      await rmdir(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      if (leaves.has(dir) || (code !== 'EBUSY' && code !== 'ENOTEMPTY'))
        throw new Error(`cannot remove cgroup ${dir}: ${(err as Error).message}`, { cause: err });
    }
  }
}

async function enableV2Controllers(dir: string): Promise<void> {
  const available = (await readFile(join(dir, 'cgroup.controllers'), 'utf8').catch(() => ''))
    .trim()
    .split(/\s+/);
  for (const controller of V2_CONTROLLERS.filter((c) => available.includes(c))) {
    // Refused where the cgroup itself holds processes (v2's no-internal-process rule): then
    // the child gets what it can, accounting still complete at the levels above.
    await writeFile(join(dir, 'cgroup.subtree_control'), `+${controller}`).catch(() => undefined);
  }
}
