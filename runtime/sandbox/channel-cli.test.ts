import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EDGEBOX_BIN } from '../test-support/cli-sandbox.ts';
import { Sandbox, SandboxError } from './sandbox.ts';

/** A forced vsock channel on a host without vhost-vsock: refused up front, nothing booted. */
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgebox-channel-cli-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [EDGEBOX_BIN, ...args], {
    env: {
      ...process.env,
      EDGEBOX_RUN_DIR: join(dir, 'run'),
      EDGEBOX_CACHE_DIR: join(dir, 'cache'),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const hostHasVhostVsock = existsSync('/dev/vhost-vsock');

describe('agent channel choice at the edges', () => {
  it.skipIf(hostHasVhostVsock)(
    '`sandbox run --channel vsock` fails at once with what this host lacks (it has no /dev/vhost-vsock)',
    async () => {
      const result = await runCli([
        'sandbox',
        'run',
        '--channel',
        'vsock',
        '--rootfs',
        dir,
        '--',
        'true',
      ]);
      expect(result).toEqual({
        code: 1,
        stdout: '',
        stderr:
          'edgebox: the vsock agent channel cannot work on this host: /dev/vhost-vsock does not exist (no vhost_vsock module on this host)\n',
      });
      // Refused before the image build and before any run directory.
      expect(existsSync(join(dir, 'cache', 'images'))).toBe(false);
      expect(await readdir(join(dir, 'run')).catch(() => [])).toEqual([]);
    },
  );

  it('`sandbox run --image DIR` (or $EDGEBOX_GUEST_IMAGE) starts from that image and builds nothing: a missing one is one line saying how to make it', async () => {
    const missing = join(dir, 'no-image-here');
    for (const [args, env] of [
      [['--image', missing], {}],
      [[], { EDGEBOX_GUEST_IMAGE: missing }],
    ] as const) {
      const result = await runCli(
        ['sandbox', 'run', '--channel', 'serial', ...args, '--rootfs', dir, '--', 'true'],
        env,
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        new RegExp(
          `^edgebox: no edgebox guest image at ${missing} \\(.*\\); build it once on this node with \`edgebox sandbox image build --out ${missing}\`\n$`,
        ),
      );
      expect(existsSync(join(dir, 'cache', 'images'))).toBe(false);
    }
  });

  it('rejects an unknown --channel', async () => {
    const result = await runCli([
      'sandbox',
      'run',
      '--channel',
      'pigeon',
      '--rootfs',
      dir,
      '--',
      'true',
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('edgebox: --channel pigeon: expected auto, vsock or serial\n');
  });

  it('Sandbox.create with a forced vsock fails with a one-line SandboxError and leaves nothing', async () => {
    const runRoot = join(dir, 'run');
    const creating = Sandbox.create(
      {
        id: 'forced',
        channel: 'vsock',
        runRoot,
        image: { kernelPath: '/k', initramfsPath: '/i', runtimePath: '/r' },
      },
      {
        probeVsock: () =>
          Promise.resolve({
            available: false,
            missing: ['/dev/vhost-vsock cannot be opened read-write (EACCES)'],
          }),
      },
    );
    await expect(creating).rejects.toBeInstanceOf(SandboxError);
    await expect(creating).rejects.toThrow(
      /^sandbox forced: the vsock agent channel cannot work on this host: \/dev\/vhost-vsock cannot be opened read-write \(EACCES\)$/,
    );
    expect(existsSync(runRoot)).toBe(false);
  });
});
