import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from '../test/apiserver/server.ts';
import { KUBELET } from '../bench/hub/bench-cluster.ts';
import { HubProcess, plainGet } from '../bench/hub/hub-process.ts';
import { readHubUnit, UNIT_INSTALL_DIR } from '../bench/hub/memory.ts';
import { decodeLeaseBody } from '../edge-hub/local/lease-protobuf.ts';
import { leaseProtobufBody } from '../test/support/kubelet-protobuf.ts';
import { bundleHub, HUB_BUNDLE_ENTRY, RESOLVER_BUNDLE_ENTRY } from './bundle-hub.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
  version: string;
  scripts: Record<string, string>;
};

describe('the deployed hub bundle', () => {
  let root: string;
  let out: string;

  beforeAll(async () => {
    // Laid out as on a node: <root>/dist/hub/, package.json and node_modules in <root>.
    root = mkdtempSync(join(tmpdir(), 'edgebox-bundle-'));
    out = join(root, 'dist/hub');
    await bundleHub(out);
    copyFileSync(join(REPO, 'package.json'), join(root, 'package.json'));
    symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('is what the unit runs and what npm run build writes', () => {
    expect(readHubUnit().script).toBe(`${UNIT_INSTALL_DIR}dist/hub/${HUB_BUNDLE_ENTRY}`);
    expect(pkg.scripts.build).toContain('scripts/bundle-hub.ts');
  });

  it('is CommonJS (no ESM loader in the hub) beside the ES-module kubeconfig resolver', () => {
    const files = readdirSync(out);
    expect(files).toContain(HUB_BUNDLE_ENTRY);
    expect(files).toContain(RESOLVER_BUNDLE_ENTRY);
    const hubFiles = files.filter((f) => f !== RESOLVER_BUNDLE_ENTRY && !f.startsWith('resolver-'));
    expect(hubFiles.every((f) => f.endsWith('.cjs'))).toBe(true);
    expect(readFileSync(join(out, HUB_BUNDLE_ENTRY), 'utf8')).not.toMatch(/^import /m);
  });

  it('holds only ASCII, so V8 stores each source at one byte a character', () => {
    for (const file of readdirSync(out)) {
      const bytes = readFileSync(join(out, file));
      expect({ file, nonAscii: bytes.findIndex((b) => b > 0x7f) }).toEqual({ file, nonAscii: -1 });
    }
  });

  it('decodes kubelet protobuf Leases in a chunk of its own, loaded when needed, without long.js', () => {
    const chunk = readdirSync(out).find((f) => f.startsWith('lease-protobuf-'));
    if (chunk === undefined) throw new Error('no lease-protobuf chunk in the bundle');
    expect(readFileSync(join(out, HUB_BUNDLE_ENTRY), 'utf8')).not.toContain('WebAssembly');
    const source = readFileSync(join(out, chunk), 'utf8');
    // long.js instantiates a WebAssembly module as it loads (~0.8 MB resident).
    expect(source).not.toContain('WebAssembly');
    const bundled = createRequire(import.meta.url)(join(out, chunk)) as {
      decodeLeaseBody: typeof decodeLeaseBody;
    };
    const body = leaseProtobufBody({
      metadata: { name: 'n1', resourceVersion: '7', creationTimestamp: '2024-05-01T09:00:00Z' },
      spec: { holderIdentity: 'n1', leaseDurationSeconds: 40, renewTime: '2024-05-01T10:00:10.5Z' },
    });
    expect(bundled.decodeLeaseBody(body)).toEqual(decodeLeaseBody(body));
    expect(bundled.decodeLeaseBody(body)).toMatchObject({
      metadata: { creationTimestamp: '2024-05-01T09:00:00Z' },
      spec: { renewTime: '2024-05-01T10:00:10.500000Z' },
    });
  });

  it('runs the CLI, reading the version from the package.json beside dist/', () => {
    const r = spawnSync(process.execPath, [join(out, HUB_BUNDLE_ENTRY), '--version'], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('serves through upstream as the unit launches it: its environment and node flags, resolver child, LevelDB addon', async () => {
    const api = new FakeApiServer({});
    await api.start();
    const unit = readHubUnit();
    const environment = Object.entries(unit.environment).map(([k, v]) => `${k}=${v}`);
    const hub = await HubProcess.spawn({
      command: [
        '/usr/bin/env',
        ...environment,
        process.execPath,
        ...unit.nodeFlags,
        join(out, HUB_BUNDLE_ENTRY),
      ],
      servers: [],
      dataDir: join(root, 'data'),
      logFile: join(root, 'hub.log'),
      nodeName: 'node-0',
      extraArgs: ['--upstream-kubeconfig', api.kubeconfigPath(root, { auth: 'token' })],
    });
    try {
      await hub.waitReady();
      await hub.waitUpstream('up');
      const answer = await plainGet(`${hub.url}/api/v1/namespaces/default/pods`, KUBELET);
      expect({ status: answer.status, source: answer.source }).toEqual({
        status: 200,
        source: 'upstream',
      });
    } finally {
      await hub.stop();
      await api.close();
    }
  });
});
