import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChannelUnavailableError, probeVsock, selectAgentChannel } from './channel-select.ts';

let dir: string;
let bin: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgebox-channel-probe-'));
  bin = join(dir, 'bin');
  await mkdir(bin);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fakeSocat(): Promise<string> {
  const path = join(bin, 'socat');
  await writeFile(path, '#!/bin/sh\n');
  await chmod(path, 0o755);
  return path;
}

/** A stand-in for /dev/vhost-vsock that opens read-write (the real one is absent here). */
async function openableDevice(): Promise<string> {
  const path = join(dir, 'vhost-vsock');
  await writeFile(path, '');
  return path;
}

describe('agent channel selection', () => {
  it('finds vsock usable when the device opens read-write and socat is on PATH', async () => {
    const socat = await fakeSocat();
    const probe = await probeVsock({
      vhostVsockPath: await openableDevice(),
      searchPath: `${join(dir, 'empty')}:${bin}`,
    });
    expect(probe).toEqual({ available: true, socatPath: socat });
    expect(await selectAgentChannel('auto', () => Promise.resolve(probe))).toEqual({
      kind: 'vsock',
      socatPath: socat,
    });
  });

  it('names a missing device', async () => {
    await fakeSocat();
    const probe = await probeVsock({ vhostVsockPath: join(dir, 'absent'), searchPath: bin });
    expect(probe).toEqual({
      available: false,
      missing: [`${join(dir, 'absent')} does not exist (no vhost_vsock module on this host)`],
    });
  });

  it('names a device that exists but does not open read-write', async () => {
    await fakeSocat();
    // Root opens any file; a directory fails for everyone (EISDIR).
    const notADevice = join(dir, 'vhost-vsock-dir');
    await mkdir(notADevice);
    const probe = await probeVsock({ vhostVsockPath: notADevice, searchPath: bin });
    expect(probe).toEqual({
      available: false,
      missing: [`${notADevice} cannot be opened read-write (EISDIR)`],
    });
  });

  it('names a missing or non-executable socat', async () => {
    const socat = await fakeSocat();
    await chmod(socat, 0o644);
    const probe = await probeVsock({ vhostVsockPath: await openableDevice(), searchPath: bin });
    if (process.getuid?.() === 0) {
      // Root may execute a file with no x bit only if some x bit is set; 0644 has none.
      expect(probe.available).toBe(false);
    }
    const none = await probeVsock({
      vhostVsockPath: await openableDevice(),
      searchPath: join(dir, 'empty'),
    });
    expect(none).toEqual({
      available: false,
      missing: ['socat is not on PATH (install the Debian package socat)'],
    });
  });

  it('auto falls back to serial, saying why; a forced vsock fails with what is missing', async () => {
    const probe = (): Promise<{ available: false; missing: string[] }> =>
      Promise.resolve({
        available: false,
        missing: ['/dev/vhost-vsock does not exist', 'no socat'],
      });
    expect(await selectAgentChannel('auto', probe)).toEqual({
      kind: 'serial',
      vsockMissing: ['/dev/vhost-vsock does not exist', 'no socat'],
    });
    await expect(selectAgentChannel('vsock', probe)).rejects.toThrow(ChannelUnavailableError);
    await expect(selectAgentChannel('vsock', probe)).rejects.toThrow(
      'the vsock agent channel cannot work on this host: /dev/vhost-vsock does not exist; no socat',
    );
    let probed = false;
    expect(
      await selectAgentChannel('serial', () => {
        probed = true;
        return probe();
      }),
    ).toEqual({ kind: 'serial' });
    expect(probed).toBe(false);
  });
});
