import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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

/**
 * Claims a vsock guest CID unique among the VMs started under `runRoot`:
 * `<runRoot>/.vsock-cids/<cid>` is created exclusively (a hard link of a
 * complete temp file, so no reader sees it half-written) holding the owner's
 * pid. Claims of dead owners are reclaimed. VMs of other runtimes on the host
 * are not known here; QEMU refuses a CID the kernel already has, and the
 * caller retries with that CID excluded.
 */
export async function allocateVsockCid(
  runRoot: string,
  options: AllocateVsockCidOptions = {},
): Promise<VsockCidLease> {
  const dir = join(runRoot, VSOCK_CID_DIR);
  const first = options.firstCid ?? FIRST_GUEST_CID;
  const last = first + (options.maxScanned ?? MAX_CIDS_SCANNED) - 1;
  const isAlive = options.isAlive ?? processAlive;
  const token = `${options.ownerPid ?? process.pid} ${randomBytes(8).toString('hex')}\n`;
  for (let cid = first; cid <= last; cid++) {
    if (options.exclude?.has(cid)) continue;
    const path = join(dir, String(cid));
    // A few rounds: the directory may vanish under a concurrent release, a stale claim be freed.
    for (let round = 0; round < 8; round++) {
      const temp = join(dir, `.claim-${randomBytes(6).toString('hex')}`);
      try {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await writeFile(temp, token, { flag: 'wx', mode: 0o600 });
        await link(temp, path);
        return lease(cid, path, dir, token);
      } catch (err) {
        if (code(err) === 'ENOENT') continue;
        if (code(err) !== 'EEXIST') {
          throw new Error(`cannot claim vsock CID ${cid} in ${dir}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        if (!(await reclaimIfStale(path, isAlive))) break;
      } finally {
        await unlink(temp).catch(() => undefined);
      }
    }
  }
  throw new Error(`no free vsock guest CID between ${first} and ${last} (claims in ${dir})`);
}

function lease(cid: number, path: string, dir: string, token: string): VsockCidLease {
  let released: Promise<void> | undefined;
  return {
    cid,
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
