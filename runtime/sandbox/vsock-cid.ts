import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, readdir, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ensureRunRoot } from '../paths.ts';
import { VsockCidInUseError } from '../hypervisor/hypervisor.ts';
import { processAlive } from '../process/alive.ts';

/**
 * Directory under the run root holding one file per guest CID in use, named
 * by the CID: beside the sandboxes' run directories, under a dot name no
 * sandbox id can take.
 */
export const VSOCK_CID_DIR = '.vsock-cids';
/** 0-2 are reserved (hypervisor, local, host); guests start at 3. */
export const FIRST_GUEST_CID = 3;
/** How many CIDs one allocation looks at before giving up. */
const MAX_CIDS_SCANNED = 4096;
/** VM starts tried with a fresh CID when another VM on the host holds the one claimed. */
const MAX_CID_ATTEMPTS = 8;

export interface VsockCidLease {
  readonly cid: number;
  /** Gives the CID back; safe to call more than once. */
  release(): Promise<void>;
}

export interface AllocateVsockCidOptions {
  /** CIDs not to take (QEMU said another VM on the host has them). */
  exclude?: ReadonlySet<number>;
  firstCid?: number;
  maxScanned?: number;
  ownerPid?: number;
  isAlive?: (pid: number) => boolean;
}

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (code(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Frees `path` when the runtime that claimed it is dead. Returns true when the
 * CID may be tried again. The claim is moved aside before it is deleted and
 * compared with what was judged stale, so a claim another runtime made in the
 * meantime is put back, not deleted.
 */
async function reclaimIfStale(path: string, isAlive: (pid: number) => boolean): Promise<boolean> {
  const content = await readOrUndefined(path);
  if (content === undefined) return true;
  const pid = Number(content.split(' ')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || isAlive(pid)) return false;
  const aside = `${path}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if (code(err) === 'ENOENT') return true;
    throw err;
  }
  const moved = await readOrUndefined(aside);
  if (moved !== content) await link(aside, path).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
  return moved === content;
}

/** Removes the claims in `dir` whose owners are dead, and `dir` itself once empty. */
export async function reclaimDeadClaims(
  dir: string,
  isAlive: (pid: number) => boolean = processAlive,
): Promise<void> {
  const names = await readdir(dir).catch(() => []);
  for (const name of names.filter((n) => /^\d+$/.test(n))) {
    await reclaimIfStale(join(dir, name), isAlive);
  }
  await rmdir(dir).catch(() => undefined);
}

/** A number claimed in a claims directory; give it back with release(). */
export interface NumberClaim {
  readonly value: number;
  /** Gives the number back; safe to call more than once. */
  release(): Promise<void>;
}

/**
 * Claims the lowest free number in `first..last` among the runtimes sharing
 * `dir`: `<dir>/<n>` is created exclusively (a hard link of a complete temp
 * file, so no reader sees it half-written) holding the owner's pid. Claims of
 * dead owners are reclaimed. `what` names the number in errors.
 */
export async function claimNumber(
  dir: string,
  range: { first: number; last: number },
  what: string,
  options: Pick<AllocateVsockCidOptions, 'exclude' | 'ownerPid' | 'isAlive'> = {},
): Promise<NumberClaim> {
  const isAlive = options.isAlive ?? processAlive;
  const token = `${options.ownerPid ?? process.pid} ${randomBytes(8).toString('hex')}\n`;
  // Once, before the claims: the claim directory below is private, the run root must not be.
  await ensureRunRoot(dirname(dir));
  for (let n = range.first; n <= range.last; n++) {
    if (options.exclude?.has(n)) continue;
    const path = join(dir, String(n));
    // A few rounds: the directory may vanish under a concurrent release, a stale claim be freed.
    for (let round = 0; round < 8; round++) {
      const temp = join(dir, `.claim-${randomBytes(6).toString('hex')}`);
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await writeFile(temp, token, { flag: 'wx', mode: 0o600 });
        await link(temp, path);
        return lease(n, path, dir, token);
      } catch (err) {
        if (code(err) === 'ENOENT') continue;
        if (code(err) !== 'EEXIST') {
          throw new Error(`cannot claim ${what} ${n} in ${dir}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        if (!(await reclaimIfStale(path, isAlive))) break;
      } finally {
        await unlink(temp).catch(() => undefined);
      }
    }
  }
  throw new Error(`no free ${what} between ${range.first} and ${range.last} (claims in ${dir})`);
}

/**
 * Claims a vsock guest CID unique among the VMs started under `runRoot`, in
 * `<runRoot>/.vsock-cids/` (see claimNumber). VMs of other runtimes on the
 * host are not known here; QEMU refuses a CID the kernel already has, and the
 * caller retries with that CID excluded.
 */
export async function allocateVsockCid(
  runRoot: string,
  options: AllocateVsockCidOptions = {},
): Promise<VsockCidLease> {
  const first = options.firstCid ?? FIRST_GUEST_CID;
  const claim = await claimNumber(
    join(runRoot, VSOCK_CID_DIR),
    { first, last: first + (options.maxScanned ?? MAX_CIDS_SCANNED) - 1 },
    'vsock guest CID',
    options,
  );
  return { cid: claim.value, release: () => claim.release() };
}

function lease(value: number, path: string, dir: string, token: string): NumberClaim {
  let released: Promise<void> | undefined;
  return {
    value,
    release() {
      released ??= (async () => {
        if ((await readOrUndefined(path)) === token) await unlink(path).catch(() => undefined);
        // Leave no empty directory behind (the run root then holds only sandboxes).
        await rmdir(dir).catch(() => undefined);
      })();
      return released;
    },
  };
}

/**
 * Starts a VM with a claimed CID; when the VMM says another VM on the host
 * (another runtime, another run root) has it, claims the next one. The claim
 * of a failed start is given back.
 */
export async function startWithVsockCid<T>(
  runRoot: string,
  start: (guestCid: number) => Promise<T>,
  options: AllocateVsockCidOptions = {},
): Promise<{ vm: T; cid: VsockCidLease }> {
  const taken = new Set<number>(options.exclude);
  for (let attempt = 1; attempt <= MAX_CID_ATTEMPTS; attempt++) {
    const cid = await allocateVsockCid(runRoot, { ...options, exclude: taken });
    try {
      return { vm: await start(cid.cid), cid };
    } catch (err) {
      await cid.release();
      if (!(err instanceof VsockCidInUseError)) throw err;
      taken.add(cid.cid);
    }
  }
  throw new Error(
    `no vsock guest CID the VMM could use after ${MAX_CID_ATTEMPTS} tries (${[...taken].join(', ')} are held by other VMs on this host)`,
  );
}
