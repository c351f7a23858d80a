import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'smol-toml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_PATHS, HUB_UPSTREAM_VARIABLE, NodeSetup, type NodePaths } from './node-setup.ts';
import type { ServiceAction, ServiceManager } from './service-manager.ts';

const BIN = new URL('../bin/edgebox.js', import.meta.url).pathname;
const KUBEADM_NODE = new URL('./testdata/kubeadm-node', import.meta.url).pathname;
const KUBELET_CONF = '/etc/kubernetes/kubelet.conf';
const CONTAINERD_TOML = '/etc/containerd/config.toml';
const HUB_ENV = '/etc/default/edgebox-hub';
const PATHS: NodePaths = {
  kubeletKubeconfig: KUBELET_CONF,
  containerdConfig: CONTAINERD_TOML,
  hubEnvironment: HUB_ENV,
};
const RUNTIMES = ['plugins', 'io.containerd.grpc.v1.cri', 'containerd', 'runtimes'];

/** Every file under `root`: its bytes (base64) and mode, by path. */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of readdirSync(root, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    const mode = (statSync(path).mode & 0o7777).toString(8);
    out[relative(root, path)] = entry.isFile()
      ? `${mode} ${readFileSync(path).toString('base64')}`
      : `${mode} dir`;
  }
  return out;
}

function edgebox(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function dig(value: unknown, keys: readonly string[]): unknown {
  return keys.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], value);
}

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'edgebox-node-'));
  cpSync(KUBEADM_NODE, root, { recursive: true });
  // As kubeadm writes it (git keeps no modes but the executable bit).
  chmodSync(join(root, KUBELET_CONF), 0o600);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('edgebox node enable / disable on a copied kubeadm node', () => {
  it('points kubelet at the hub, adds the edgebox runtime, keeps every setting, and disable restores the tree byte for byte', () => {
    const before = snapshot(root);
    const originalToml = parse(readFileSync(join(root, CONTAINERD_TOML), 'utf8'));

    const enabled = edgebox('node', 'enable', '--root', root);
    expect(enabled.stderr).toBe('');
    expect(enabled.code).toBe(0);
    expect(enabled.stdout).toContain(
      `change ${KUBELET_CONF}: context system:node:edge-1@kubernetes: cluster kubernetes (https://10.0.0.10:6443) -> edgebox-hub (http://127.0.0.1:10271) (original kept as ${KUBELET_CONF}.edgebox-orig)`,
    );
    expect(enabled.stdout).toContain(`change ${CONTAINERD_TOML}: runtime edgebox`);
    expect(enabled.stdout).toContain('skip: systemctl restart kubelet.service (--root');

    // kubelet's client library reads the result: the hub, with the node's user kept.
    const kc = new KubeConfig();
    kc.loadFromFile(join(root, KUBELET_CONF));
    expect(kc.getCurrentCluster()?.server).toBe('http://127.0.0.1:10271');
    expect(kc.getCurrentUser()?.certFile).toBe('/var/lib/kubelet/pki/kubelet-client-current.pem');
    expect(kc.getCluster('kubernetes')?.server).toBe('https://10.0.0.10:6443');
    // The hub forwards with the original, which enable kept byte for byte.
    expect(readFileSync(join(root, `${KUBELET_CONF}.edgebox-orig`))).toEqual(
      readFileSync(join(KUBEADM_NODE, KUBELET_CONF)),
    );
    expect(readFileSync(join(root, HUB_ENV), 'utf8')).toContain(
      `EDGEBOX_UPSTREAM_KUBECONFIG=${KUBELET_CONF}.edgebox-orig\n`,
    );
    expect(statSync(join(root, KUBELET_CONF)).mode & 0o777).toBe(0o600);

    // containerd's table: edgebox added, every other setting as it was.
    const toml = parse(readFileSync(join(root, CONTAINERD_TOML), 'utf8'));
    const runtimes = dig(toml, RUNTIMES) as Record<string, unknown>;
    expect(runtimes['edgebox']).toEqual({ runtime_type: 'io.containerd.edgebox.v2' });
    delete runtimes['edgebox'];
    expect(toml).toEqual(originalToml);

    // Twice is harmless: nothing changes the second time.
    const afterEnable = snapshot(root);
    const again = edgebox('node', 'enable', '--root', root);
    expect(again.code).toBe(0);
    expect(again.stdout).not.toMatch(/^change /m);
    expect(again.stdout).toContain(`unchanged: ${KUBELET_CONF}`);
    expect(snapshot(root)).toEqual(afterEnable);

    const disabled = edgebox('node', 'disable', '--root', root);
    expect(disabled.code).toBe(0);
    expect(disabled.stdout).toContain(`restore ${KUBELET_CONF} from ${KUBELET_CONF}.edgebox-orig`);
    expect(snapshot(root)).toEqual(before);
    const disabledAgain = edgebox('node', 'disable', '--root', root);
    expect(disabledAgain.code).toBe(0);
    expect(disabledAgain.stdout).toContain('nothing to put back');
    expect(snapshot(root)).toEqual(before);
  });

  it("writes a config containerd's own parser accepts, with the edgebox runtime in it", () => {
    const containerd = spawnSync('containerd', ['--version']);
    if (containerd.error) {
      console.warn('skipped: containerd is not installed (.ci/apt-packages installs it)');
      return;
    }
    expect(edgebox('node', 'enable', '--root', root).code).toBe(0);
    const dumped = execFileSync(
      'containerd',
      ['-c', join(root, CONTAINERD_TOML), 'config', 'dump'],
      {
        encoding: 'utf8',
      },
    );
    const runtime = dig(parse(dumped), [...RUNTIMES, 'edgebox']);
    expect(runtime).toMatchObject({ runtime_type: 'io.containerd.edgebox.v2' });
    expect(dig(parse(dumped), [...RUNTIMES, 'runc', 'options', 'SystemdCgroup'])).toBe(true);
  });

  it('--dry-run prints the same changes and changes nothing', () => {
    const before = snapshot(root);
    const dry = edgebox('node', 'enable', '--root', root, '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(
      `would change ${KUBELET_CONF}: context system:node:edge-1@kubernetes`,
    );
    expect(dry.stdout).toContain(`would change ${CONTAINERD_TOML}: runtime edgebox`);
    expect(snapshot(root)).toEqual(before);
  });

  it('refuses a malformed file with its name and line, and changes nothing', () => {
    const toml = join(root, CONTAINERD_TOML);
    writeFileSync(toml, 'version = 2\n\n[plugins\nfoo = 1\n');
    const before = snapshot(root);
    const r = edgebox('node', 'enable', '--root', root);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(
        `^edgebox: ${CONTAINERD_TOML}:3:\\d+: not valid TOML \\(.+\\); nothing was changed\\n$`,
      ),
    );
    expect(snapshot(root)).toEqual(before);

    cpSync(join(KUBEADM_NODE, CONTAINERD_TOML), toml);
    writeFileSync(join(root, KUBELET_CONF), 'apiVersion: v1\nclusters:\n- cluster: {server: x\n');
    const before2 = snapshot(root);
    const y = edgebox('node', 'enable', '--root', root);
    expect(y.code).toBe(1);
    expect(y.stderr).toMatch(new RegExp(`^edgebox: ${KUBELET_CONF}:\\d+:\\d+: not valid YAML`));
    expect(snapshot(root)).toEqual(before2);
  });

  it('refuses a containerd config without a version (schema 1) and a kubeconfig with no current context', () => {
    writeFileSync(join(root, CONTAINERD_TOML), '[plugins.cri]\n');
    const r = edgebox('node', 'enable', '--root', root);
    expect(r.stderr).toContain(
      `${CONTAINERD_TOML}: config version (none, i.e. 1) is not supported`,
    );
    cpSync(join(KUBEADM_NODE, CONTAINERD_TOML), join(root, CONTAINERD_TOML));
    writeFileSync(
      join(root, KUBELET_CONF),
      'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n',
    );
    const k = edgebox('node', 'enable', '--root', root);
    expect(k.stderr).toContain(
      `${KUBELET_CONF}: not a kubeconfig kubelet can use (current-context:`,
    );
    expect(k.code).toBe(1);
  });
});

class RecordingServices implements ServiceManager {
  readonly calls: string[] = [];
  failOn: string | undefined;
  apply(action: ServiceAction, unit: string): Promise<void> {
    if (`${action} ${unit}` === this.failOn) return Promise.reject(new Error(`${unit} not found`));
    this.calls.push(`${action} ${unit}`);
    return Promise.resolve();
  }
}

describe('NodeSetup and the node services', () => {
  const setup = (services: ServiceManager, dryRun = false) =>
    new NodeSetup({
      paths: PATHS,
      root,
      hubUrl: 'http://127.0.0.1:10271',
      services,
      dryRun,
      report: () => {},
    });

  it('starts the hub before kubelet is pointed at it, restarts what changed, and only that', async () => {
    const services = new RecordingServices();
    await setup(services).enable();
    expect(services.calls).toEqual([
      'enable --now edgebox-hub.service',
      'restart edgebox-hub.service',
      'restart containerd.service',
      'restart kubelet.service',
    ]);
    services.calls.length = 0;
    await setup(services).enable();
    expect(services.calls).toEqual(['enable --now edgebox-hub.service']);
    services.calls.length = 0;
    await setup(services).disable();
    // kubelet back on the apiserver before its hub stops.
    expect(services.calls).toEqual([
      'restart kubelet.service',
      'disable --now edgebox-hub.service',
      'restart containerd.service',
    ]);
  });

  it('leaves the tree as it was when the hub cannot be started', async () => {
    const before = snapshot(root);
    const services = new RecordingServices();
    services.failOn = 'enable --now edgebox-hub.service';
    await expect(setup(services).enable()).rejects.toThrow('edgebox-hub.service not found');
    expect(snapshot(root)).toEqual(before);
  });

  it('with --dry-run asks no service for anything', async () => {
    const services = new RecordingServices();
    await setup(services, true).enable();
    expect(services.calls).toEqual([]);
  });
});

describe('deploy/hub/edgebox-hub.service', () => {
  it('reads the file enable writes and forwards with the kubeconfig it names', () => {
    const unit = readFileSync(
      new URL('../deploy/hub/edgebox-hub.service', import.meta.url),
      'utf8',
    );
    expect(unit).toContain(`\nEnvironmentFile=-${DEFAULT_PATHS.hubEnvironment}\n`);
    expect(unit).toMatch(new RegExp(`--upstream-kubeconfig \\$\\{${HUB_UPSTREAM_VARIABLE}\\}`));
  });
});
