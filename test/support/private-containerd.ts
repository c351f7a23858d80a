import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface PrivateContainerd {
  /** Its gRPC socket, for `ctr -a`. */
  address: string;
  /** Runs ctr against it. */
  ctr(
    args: readonly string[],
    options?: { timeoutMs?: number },
  ): { code: number | null; stdout: string; stderr: string };
  stop(): Promise<void>;
}

/**
 * Debian's containerd with a config, root, state and sockets of its own (never
 * the machine's), the CRI plugin off: enough for `ctr image import` and `ctr
 * run` with runc. Ready when `ctr version` answers.
 */
export async function startPrivateContainerd(): Promise<PrivateContainerd> {
  // Short: a unix socket path must fit in 108 bytes.
  const dir = mkdtempSync('/tmp/ctd-');
  const address = join(dir, 'containerd.sock');
  mkdirSync(join(dir, 'root'));
  mkdirSync(join(dir, 'state'));
  writeFileSync(
    join(dir, 'config.toml'),
    [
      'version = 2',
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '',
    ].join('\n'),
  );
  const child = spawn('containerd', ['-c', join(dir, 'config.toml')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (log = (log + c).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const ctr: PrivateContainerd['ctr'] = (args, options = {}) => {
    const r = spawnSync('ctr', ['-a', address, ...args], {
      encoding: 'utf8',
      timeout: options.timeoutMs ?? 120_000,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  for (;;) {
    if (child.exitCode !== null) throw new Error(`containerd exited (${child.exitCode}): ${log}`);
    if (ctr(['version'], { timeoutMs: 5000 }).code === 0) return { address, ctr, stop };
    // containerd is still starting: ask again once it has had a moment.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
