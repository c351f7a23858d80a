// `npm run package` end to end: the .deb installed with dpkg on this machine
// and run from its installed paths with no npm (or any other Node) on PATH,
// then removed without a trace; the ECM image imported into a private
// containerd and run with `ctr run`.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readHubUnit } from '../../bench/hub/memory.ts';
import { hubStatusSchema } from '../../edge-hub/hub-status.ts';
import { DEFAULT_PATHS } from '../../node-setup/node-setup.ts';
import { FakeApiServer } from '../apiserver/server.ts';
import { KUBELET_UA } from '../hub/hub-harness.ts';
import { startContainerd } from '../../runtime/test-support/containerd.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
};
const SHIM = 'containerd-shim-edgebox-v2';
/** What `edgebox node enable` writes; its presence means the node is enabled. */
const ENABLED_MARKER = DEFAULT_PATHS.hubEnvironment;
const TOOLS = ['dpkg-deb', 'dpkg', 'umoci', 'skopeo', 'containerd', 'ctr', 'runc', 'strip'];

function missingPrerequisite(): string | undefined {
  if (process.getuid?.() !== 0) return 'installing a .deb and running containerd need root';
  const missing = TOOLS.filter(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
  );
  return missing.length > 0
    ? `${missing.join(', ')} not installed (.ci/apt-packages lists them)`
    : undefined;
}
const skip = missingPrerequisite();
if (skip) console.warn(`test/package skipped: ${skip}`);

let deb = '';
let image = '';
let imageRef = '';
const OUT = mkdtempSync(join(tmpdir(), 'edgebox-packages-'));
afterAll(() => rmSync(OUT, { recursive: true, force: true }));
beforeAll(() => {
  if (skip) return;
  // `npm run package` is `npm run build` and this script; CI has built already,
  // and rebuilding dist/ here would pull it from under tests running beside.
  if (!existsSync(join(REPO, 'dist/hub/edgebox.cjs'))) {
    execFileSync('npm', ['run', 'build'], { cwd: REPO, stdio: 'pipe' });
  }
  const out = execFileSync(process.execPath, [join(REPO, 'scripts/package.ts'), '--out', OUT], {
    cwd: REPO,
    encoding: 'utf8',
  });
  const arch = execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim();
  deb = join(OUT, `edgebox_${pkg.version}_${arch}.deb`);
  image = join(OUT, `edgebox-ecm_${pkg.version}.oci.tar`);
  imageRef = /edgebox-ecm_[^:]+\.oci\.tar: (\S+)/.exec(out)?.[1] ?? '';
}, 600_000);

/** A directory with nothing in it: a PATH on which there is no npm and no node. */
const EMPTY_PATH = mkdtempSync(join(tmpdir(), 'no-npm-'));
afterAll(() => rmSync(EMPTY_PATH, { recursive: true, force: true }));

/** The files and directories the package ships that no other package owns (its own tree). */
function shippedPaths(): string[] {
  const listing = execFileSync('dpkg-deb', ['--fsys-tarfile', deb], { maxBuffer: 1 << 30 });
  const names = execFileSync('tar', ['-t'], {
    input: listing,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  return names
    .split('\n')
    .map((n) => n.replace(/^\.\//, '/').replace(/\/$/, ''))
    .filter((n) => n !== '' && n !== '/')
    .filter(
      (n) =>
        ![
          '/usr',
          '/usr/bin',
          '/usr/lib',
          '/usr/share',
          '/lib',
          '/lib/systemd',
          '/lib/systemd/system',
        ].includes(n),
    );
}

function present(paths: readonly string[]): string[] {
  return [...paths, '/var/lib/dpkg/info/edgebox.list'].filter((p) => existsSync(p));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe.skipIf(skip !== undefined)('npm run package', () => {
  it('the .deb installs, runs from its installed paths without npm, and dpkg -r leaves no file behind', async () => {
    if (existsSync(ENABLED_MARKER))
      throw new Error(`${ENABLED_MARKER} exists: this machine is an enabled node`);
    const paths = shippedPaths();
    expect(paths).toEqual(
      expect.arrayContaining([
        '/usr/bin/edgebox',
        '/lib/systemd/system/edgebox-hub.service',
        '/usr/share/edgebox/deploy/ecm/kustomization.yaml',
      ]),
    );
    expect(present(paths)).toEqual([]);
    execFileSync('dpkg', ['-i', deb], { stdio: 'pipe' });
    try {
      const run = (cmd: string, args: string[]) =>
        spawnSync(cmd, args, { encoding: 'utf8', env: { PATH: EMPTY_PATH } });
      const version = run('/usr/bin/edgebox', ['--version']);
      expect(version.stderr).toBe('');
      expect(version.stdout).toBe(`${pkg.version}\n`);
      expect(run('/usr/bin/edgebox', ['--help']).stdout).toMatch(/^ {2}node\s/m);

      if (pkg.bin[SHIM] === undefined) {
        console.warn(
          `skipped: ${SHIM} --help (package.json has no bin ${SHIM} yet; it ships once it does)`,
        );
      } else {
        const shim = run(`/usr/bin/${SHIM}`, ['--help']);
        expect(`${shim.stdout}${shim.stderr}`).toMatch(/usage|Usage|-namespace/);
        // The shim's default image is the one the package ships: nothing to build on the node.
        expect(readFileSync(`/usr/bin/${SHIM}`, 'utf8')).toContain(
          'process.env.EDGEBOX_GUEST_IMAGE ??= "/usr/lib/edgebox/guest-image"',
        );
        const manifest = JSON.parse(
          readFileSync('/usr/lib/edgebox/guest-image/manifest.json', 'utf8'),
        ) as { kernel: string; initramfs: string };
        for (const file of [manifest.kernel, manifest.initramfs]) {
          expect(existsSync(join('/usr/lib/edgebox/guest-image', file))).toBe(true);
        }
      }

      // The hub as the installed unit runs it: its node, flags and script, against the API double.
      const unit = readHubUnit('/lib/systemd/system/edgebox-hub.service');
      const execStart =
        readFileSync('/lib/systemd/system/edgebox-hub.service', 'utf8').match(
          /^ExecStart=(\S+)/m,
        )?.[1] ?? '';
      expect(execStart).toBe('/usr/lib/edgebox/node');
      const api = new FakeApiServer();
      await api.start();
      const dir = mkdtempSync(join(tmpdir(), 'deb-hub-'));
      const port = await freePort();
      const metricsPort = await freePort();
      const hub = spawn(
        execStart,
        [
          ...unit.nodeFlags,
          unit.script,
          'hub',
          '--upstream-kubeconfig',
          api.kubeconfigPath(dir),
          '--listen',
          `127.0.0.1:${port}`,
          '--metrics-listen',
          `127.0.0.1:${metricsPort}`,
          '--data-dir',
          join(dir, 'hub'),
          '--log-level',
          'error',
        ],
        {
          env: { ...unit.environment, PATH: EMPTY_PATH },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      let hubLog = '';
      hub.stderr.setEncoding('utf8').on('data', (c: string) => (hubLog += c));
      try {
        // Serving once it has found its upstream up (/edgebox/status, as `edgebox hub status` reads it).
        let upstream: string | undefined;
        while (upstream !== 'up') {
          if (hub.exitCode !== null) {
            throw new Error(`the installed hub exited (${hub.exitCode}): ${hubLog}`);
          }
          const status = await fetch(`http://127.0.0.1:${metricsPort}/edgebox/status`)
            .then(async (r) => hubStatusSchema.parse(await r.json()))
            .catch(() => undefined);
          upstream = status?.upstream.state;
        }
        const reply = await fetch(`http://127.0.0.1:${port}/api/v1/namespaces/default/pods`, {
          headers: { 'user-agent': KUBELET_UA },
        });
        expect(reply.status).toBe(200);
        expect(reply.headers.get('x-edgebox-source')).toBe('upstream');
        expect(((await reply.json()) as { kind: string }).kind).toBe('PodList');
      } finally {
        hub.kill('SIGTERM');
        await new Promise((resolve) => hub.once('exit', resolve));
        await api.close();
        rmSync(dir, { recursive: true, force: true });
      }
      // Removing the package under an enabled node would strand kubelet: prerm refuses.
      writeFileSync(ENABLED_MARKER, '');
      const refused = spawnSync('dpkg', ['-r', 'edgebox'], { encoding: 'utf8' });
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toContain(
        `edgebox: this node is enabled (${ENABLED_MARKER} exists): run 'edgebox node disable' first`,
      );
      expect(existsSync('/usr/bin/edgebox')).toBe(true);
    } finally {
      rmSync(ENABLED_MARKER, { force: true });
      execFileSync('dpkg', ['-r', 'edgebox'], { stdio: 'pipe' });
    }
    expect(present(paths)).toEqual([]);
  }, 300_000);

  it('the ECM image imports into containerd and `ctr run` prints its version', async () => {
    expect(imageRef).toBe(`ghcr.io/edgebox/edgebox-ecm:${pkg.version}`);
    // What `skopeo copy oci-archive:... docker://<registry>/...` (docs/install.md) reads.
    const inspected = JSON.parse(
      execFileSync('skopeo', ['inspect', `oci-archive:${image}`], { encoding: 'utf8' }),
    ) as { Architecture: string; Os: string; Labels: Record<string, string> };
    expect(inspected).toMatchObject({
      Architecture: 'amd64',
      Os: 'linux',
      Labels: { 'org.opencontainers.image.version': pkg.version },
    });
    const containerd = await startContainerd({});
    try {
      const imported = await containerd.ctr(['image', 'import', image]);
      expect(imported.stderr).toBe('');
      expect((await containerd.ctr(['image', 'ls', '-q'])).stdout.split('\n')).toContain(imageRef);
      const run = await containerd.ctr(['run', '--rm', imageRef, `ecm-version-${process.pid}`]);
      expect(run.stderr).toBe('');
      expect(run.stdout).toBe(`${pkg.version}\n`);
      // The Deployment's command: the ECM's own code and its dependencies are in the image.
      const help = await containerd.ctr([
        'run',
        '--rm',
        imageRef,
        `ecm-help-${process.pid}`,
        'edgebox',
        'ecm',
        '--help',
      ]);
      expect(help.stdout).toContain('Usage: edgebox ecm');
    } finally {
      await containerd.stop();
    }
  }, 300_000);
});
