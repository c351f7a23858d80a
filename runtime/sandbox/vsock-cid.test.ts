import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { reapStaleSandboxes } from './stale.ts';
import { VsockCidInUseError } from '../hypervisor/hypervisor.ts';
import { VSOCK_CID_DIR, allocateVsockCid, startWithVsockCid } from './vsock-cid.ts';
import { deadPid } from '../test-support/dead-pid.ts';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'edgebox-cid-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('vsock guest CID allocation', () => {
  it('creates a missing run root, and its missing parents, passable by the unprivileged VMM and virtiofsd', async () => {
    const runRoot = join(root, 'run', 'edgebox', 'sandboxes');
    const lease = await allocateVsockCid(runRoot);
    for (const dir of [join(root, 'run'), join(root, 'run', 'edgebox'), runRoot]) {
      expect((await stat(dir)).mode & 0o777).toBe(0o711);
    }
    expect((await stat(join(runRoot, VSOCK_CID_DIR))).mode & 0o777).toBe(0o700);
    await lease.release();
  });

  it('gives concurrent allocations distinct CIDs, recorded with the owner pid', async () => {
    const leases = await Promise.all(Array.from({ length: 24 }, () => allocateVsockCid(root)));
    const cids = leases.map((l) => l.cid).sort((a, b) => a - b);
    expect(cids).toEqual(Array.from({ length: 24 }, (_, i) => 3 + i));
    const dir = join(root, VSOCK_CID_DIR);
    expect((await readdir(dir)).sort()).toEqual(cids.map(String).sort());
    expect((await readFile(join(dir, '3'), 'utf8')).split(' ')[0]).toBe(String(process.pid));
    await Promise.all(leases.map((l) => l.release()));
    // The last release leaves no directory in the run root.
    expect(existsSync(dir)).toBe(false);
  });

  it('concurrent allocations and releases never hand out a CID twice', async () => {
    const held = new Set<number>();
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 15; i++) {
        const lease = await allocateVsockCid(root, { firstCid: 100 });
        expect(held.has(lease.cid)).toBe(false);
        held.add(lease.cid);
        await Promise.resolve();
        held.delete(lease.cid);
        await lease.release();
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(existsSync(join(root, VSOCK_CID_DIR))).toBe(false);
  });

  it('reclaims the CID of a dead owner, keeps a live one, and skips excluded CIDs', async () => {
    const dir = join(root, VSOCK_CID_DIR);
    await mkdir(dir);
    await writeFile(join(dir, '3'), `${await deadPid()} old\n`);
    await writeFile(join(dir, '4'), `${process.pid} other-sandbox\n`);
    const reclaimed = await allocateVsockCid(root);
    expect(reclaimed.cid).toBe(3);
    const next = await allocateVsockCid(root, { exclude: new Set([5, 6]) });
    expect(next.cid).toBe(7);
    expect(await readFile(join(dir, '4'), 'utf8')).toBe(`${process.pid} other-sandbox\n`);
    // Release is idempotent and only removes its own claim.
    await reclaimed.release();
    await reclaimed.release();
    expect((await readdir(dir)).sort()).toEqual(['4', '7']);
    await next.release();
    expect(await readdir(dir)).toEqual(['4']);
  });

  it('gives up with the range and the directory when every CID is taken', async () => {
    const leases = [
      await allocateVsockCid(root, { maxScanned: 2 }),
      await allocateVsockCid(root, { maxScanned: 2 }),
    ];
    await expect(allocateVsockCid(root, { maxScanned: 2 })).rejects.toThrow(
      `no free vsock guest CID between 3 and 4 (claims in ${join(root, VSOCK_CID_DIR)})`,
    );
    for (const lease of leases) await lease.release();
  });

  it('is not mistaken for a stale sandbox by gc', async () => {
    const lease = await allocateVsockCid(root, { ownerPid: await deadPid() });
    expect(await reapStaleSandboxes(root, Date.now() + 10 * 60_000)).toEqual([]);
    expect(existsSync(join(root, VSOCK_CID_DIR, String(lease.cid)))).toBe(true);
    await lease.release();
  });

  it('retries the VM start with the next CID while the VMM says the CID is held elsewhere', async () => {
    const tried: number[] = [];
    const started = await startWithVsockCid(root, (cid) => {
      tried.push(cid);
      if (cid < 5) {
        return Promise.reject(new VsockCidInUseError(cid, `guest cid ${cid} in use`));
      }
      return Promise.resolve(`vm-${cid}`);
    });
    expect(tried).toEqual([3, 4, 5]);
    expect(started.vm).toBe('vm-5');
    expect(await readdir(join(root, VSOCK_CID_DIR))).toEqual(['5']);
    await started.cid.release();

    // Other start failures are not retried, and the claim is given back.
    await expect(
      startWithVsockCid(root, () => Promise.reject(new Error('qemu is broken'))),
    ).rejects.toThrow('qemu is broken');
    expect(existsSync(join(root, VSOCK_CID_DIR))).toBe(false);

    // A host where every CID tried is taken: a bounded number of tries.
    await expect(
      startWithVsockCid(root, (cid) => Promise.reject(new VsockCidInUseError(cid, 'in use'))),
    ).rejects.toThrow(
      'no vsock guest CID the VMM could use after 8 tries (3, 4, 5, 6, 7, 8, 9, 10 are held by other VMs on this host)',
    );
  });
});
