import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectlBinary } from '../support/kubectl.ts';
import { FakeApiServer } from './server.ts';

/**
 * The real kubectl (v1.32) against the double over HTTPS: if kubectl is
 * happy, discovery, OpenAPI, Tables, patches, watches and auth look like
 * kube-apiserver's.
 */

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('kubectl against the double', () => {
  const api = new FakeApiServer({ tls: true });
  let dir: string;
  let certConfig: string;
  let tokenConfig: string;
  let badTokenConfig: string;

  const kubectl = (args: string[], kubeconfig = certConfig, input?: string): Promise<Run> =>
    new Promise((resolve) => {
      const child = execFile(
        kubectlBinary(),
        ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), ...args],
        { env: { ...process.env, HOME: dir }, timeout: 30_000 },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
          resolve({ code, stdout, stderr });
        },
      );
      // kubectl prompts for a username on 401 when stdin stays open.
      child.stdin?.end(input ?? '');
    });

  const ok = async (args: string[], kubeconfig?: string): Promise<string> => {
    const r = await kubectl(args, kubeconfig);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'edgebox-kubectl-'));
    await api.start();
    certConfig = api.kubeconfigPath(dir);
    tokenConfig = api.kubeconfigPath(dir, { auth: 'token' });
    badTokenConfig = api.kubeconfigPath(dir, {
      auth: 'token',
      token: 'not-a-valid-token',
      fileName: 'bad-token.yaml',
    });
  });
  afterAll(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('authenticates with a client certificate and with a bearer token; a bad token is 401', async () => {
    const viaCert = JSON.parse(await ok(['get', 'namespaces', '-o', 'json'])) as {
      items: Array<{ metadata: { name: string } }>;
    };
    expect(viaCert.items.map((n) => n.metadata.name)).toEqual([
      'default',
      'kube-node-lease',
      'kube-public',
      'kube-system',
    ]);
    const viaToken = await ok(['get', 'ns', 'default', '-o', 'name'], tokenConfig);
    expect(viaToken.trim()).toBe('namespace/default');
    const rejected = await kubectl(['get', 'ns'], badTokenConfig);
    expect(rejected.code).not.toBe(0);
    expect(rejected.stderr).toContain('error: You must be logged in to the server (Unauthorized)');
    const users = api.requests.filter((r) => r.path === '/api/v1/namespaces').map((r) => r.user);
    expect(users).toContain('kubernetes-admin');
    expect(api.requests.some((r) => r.status === 401)).toBe(true);
  });

  it('prints server-side tables and version', async () => {
    const out = await ok(['get', 'ns']);
    expect(out.split('\n')[0]).toMatch(/^NAME\s+STATUS\s+AGE$/);
    expect(out).toMatch(/kube-system\s+Active\s+\d+s/);
    const version = JSON.parse(await ok(['version', '-o', 'json'])) as {
      serverVersion: { gitVersion: string };
    };
    expect(version.serverVersion.gitVersion).toBe('v1.32.0-edgebox-fake');
  });

  it('create -f, get -o json, label, get -l, and the NotFound message', async () => {
    const manifest = join(dir, 'pod.yaml');
    await writeFile(
      manifest,
      [
        'apiVersion: v1',
        'kind: Pod',
        'metadata:',
        '  name: web',
        '  labels: {app: web}',
        'spec:',
        '  containers:',
        '  - {name: nginx, image: "nginx:1.25"}',
        '',
      ].join('\n'),
    );
    expect(await ok(['create', '-f', manifest])).toContain('pod/web created');
    const pod = JSON.parse(await ok(['get', 'pod', 'web', '-o', 'json'])) as {
      status: { phase: string };
      metadata: { uid: string };
    };
    expect(pod.status.phase).toBe('Pending');
    expect(await ok(['label', 'pod', 'web', 'tier=frontend'])).toContain('pod/web labeled');
    expect((await ok(['get', 'pods', '-l', 'tier=frontend', '-o', 'name'])).trim()).toBe('pod/web');
    expect((await ok(['get', 'pods', '-l', 'tier=backend', '-o', 'name'])).trim()).toBe('');
    const missing = await kubectl(['get', 'pod', 'nope']);
    expect(missing.stderr.trim()).toBe('Error from server (NotFound): pods "nope" not found');
  });

  it('apply -f creates, then patches with the last-applied configuration', async () => {
    const manifest = join(dir, 'cm.yaml');
    const write = (v: string) =>
      writeFile(
        manifest,
        `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: "${v}"\n`,
      );
    await write('a');
    expect(await ok(['apply', '-f', manifest])).toContain('configmap/settings created');
    await write('b');
    expect(await ok(['apply', '-f', manifest])).toContain('configmap/settings configured');
    const cm = api.store.mustGet('configmaps', 'settings', 'default');
    expect(cm.data).toEqual({ mode: 'b' });
    expect(cm.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration']).toContain(
      '"mode":"b"',
    );
    expect(
      api.requests.some((r) => r.method === 'PATCH' && r.path.endsWith('/configmaps/settings')),
    ).toBe(true);
  });

  it('apply -f works for the custom resource (JSON merge patch), and api-resources lists it', async () => {
    const manifest = join(dir, 'widget.yaml');
    await writeFile(
      manifest,
      'apiVersion: example.edgebox.io/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n',
    );
    expect(await ok(['apply', '-f', manifest])).toContain('widget.example.edgebox.io/w1 created');
    await writeFile(
      manifest,
      'apiVersion: example.edgebox.io/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 4}\n',
    );
    expect(await ok(['apply', '-f', manifest])).toContain('configured');
    const w = api.store.mustGet('widgets', 'w1', 'default');
    expect(w.spec).toEqual({ size: 4 });
    expect(w.metadata.generation).toBe(2);
    expect(await ok(['get', 'wg', '-o', 'name'])).toContain('widget.example.edgebox.io/w1');
    const resources = await ok(['api-resources', '--api-group=example.edgebox.io']);
    expect(resources).toMatch(/widgets\s+wg\s+example.edgebox.io\/v1\s+true\s+Widget/);
  });

  it('patch --type strategic (default), merge and json', async () => {
    api.store.create('pods', {
      metadata: { name: 'patchme', namespace: 'default' },
      spec: { containers: [{ name: 'a', image: 'a:1' }] },
    });
    await ok([
      'patch',
      'pod',
      'patchme',
      '-p',
      '{"spec":{"containers":[{"name":"a","image":"a:2"}]}}',
    ]);
    await ok([
      'patch',
      'pod',
      'patchme',
      '--type',
      'merge',
      '-p',
      '{"metadata":{"labels":{"m":"1"}}}',
    ]);
    await ok([
      'patch',
      'pod',
      'patchme',
      '--type',
      'json',
      '-p',
      '[{"op":"add","path":"/metadata/annotations","value":{"j":"1"}}]',
    ]);
    const pod = api.store.mustGet('pods', 'patchme', 'default');
    expect(pod.spec).toMatchObject({ containers: [{ name: 'a', image: 'a:2' }] });
    expect(pod.metadata.labels).toEqual({ m: '1' });
    expect(pod.metadata.annotations).toEqual({ j: '1' });
    const crStrategic = await kubectl(['patch', 'widget', 'w1', '-p', '{"spec":{"size":9}}']);
    expect(crStrategic.code).not.toBe(0);
    expect(crStrategic.stderr).toContain('strategic-merge-patch+json is not supported');
  });

  it('pages with --chunk-size through limit/continue', async () => {
    api.store.create('namespaces', { metadata: { name: 'chunks' } });
    for (let i = 0; i < 7; i++)
      api.store.create('configmaps', { metadata: { name: `c${i}`, namespace: 'chunks' } });
    const out = await ok(['get', 'configmaps', '-n', 'chunks', '--chunk-size=3', '-o', 'name']);
    // kube-root-ca.crt is published by the emulated root-ca-cert-publisher on https
    expect(out.trim().split('\n')).toEqual([
      ...Array.from({ length: 7 }, (_, i) => `configmap/c${i}`),
      'configmap/kube-root-ca.crt',
    ]);
    const pages = api.requests.filter((r) => r.path === '/api/v1/namespaces/chunks/configmaps');
    expect(pages.length).toBe(3);
    expect(pages.filter((r) => r.query.has('continue')).length).toBe(2);
  });

  it('get --watch streams changes until --request-timeout', async () => {
    api.store.create('configmaps', { metadata: { name: 'watched', namespace: 'default' } });
    const child = spawn(
      kubectlBinary(),
      [
        '--kubeconfig',
        certConfig,
        '--cache-dir',
        join(dir, 'cache'),
        'get',
        'configmap',
        'watched',
        '--watch',
        '--output-watch-events',
        '-o',
        'json',
        '--request-timeout=2s',
      ],
      { env: { ...process.env, HOME: dir } },
    );
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((resolve) =>
      child.on('close', (code) => resolve(code)),
    );
    await api.requestLog.waitFor(
      (r) =>
        r.verb === 'watch' &&
        r.path === '/api/v1/namespaces/default/configmaps' &&
        r.query.get('fieldSelector') === 'metadata.name=watched',
    );
    api.store.patch('configmaps', 'watched', 'default', 'merge', { data: { k: 'v' } });
    await exited;
    const events = stdout
      .split(/\n(?=\{)/)
      .filter((s) => s.trim() !== '')
      .map((s) => JSON.parse(s) as { type: string; object: { data?: unknown } });
    expect(events.map((e) => e.type)).toEqual(['ADDED', 'MODIFIED']);
    expect(events[1]?.object.data).toEqual({ k: 'v' });
  });

  it('generator subcommands that send protobuf bodies: create namespace/configmap/secret/token, drain', async () => {
    expect(await ok(['create', 'namespace', 'pb'])).toContain('namespace/pb created');
    expect(await ok(['create', 'configmap', 'cfg', '-n', 'pb', '--from-literal=k=v'])).toContain(
      'created',
    );
    expect(
      await ok(['create', 'secret', 'generic', 'sec', '-n', 'pb', '--from-literal=p=q']),
    ).toContain('created');
    expect(api.store.mustGet('configmaps', 'cfg', 'pb').data).toEqual({ k: 'v' });
    expect(api.store.mustGet('secrets', 'sec', 'pb').data).toEqual({
      p: Buffer.from('q').toString('base64'),
    });
    const token = (await ok(['create', 'token', 'default', '-n', 'pb', '--duration=20m'])).trim();
    expect(token.split('.')).toHaveLength(3);
    api.store.create('nodes', { metadata: { name: 'drain-me' } });
    api.store.create('pods', {
      metadata: { name: 'on-node', namespace: 'pb' },
      spec: { nodeName: 'drain-me', containers: [{ name: 'c', image: 'i' }] },
    });
    const drained = await ok(['drain', 'drain-me', '--force', '--grace-period=0', '--timeout=20s']);
    expect(drained).toContain('node/drain-me drained');
    expect(api.store.get('pods', 'on-node', 'pb')).toBeUndefined();
    expect(api.store.mustGet('nodes', 'drain-me').spec).toEqual({ unschedulable: true });
    const evictions = api.requests.filter((r) => r.path.endsWith('/pods/on-node/eviction'));
    expect(evictions.map((r) => r.status)).toEqual([201]);
  });

  it('delete removes the object and waits for it to be gone', async () => {
    expect(await ok(['delete', 'pod', 'web'])).toContain('pod "web" deleted');
    expect(api.store.get('pods', 'web', 'default')).toBeUndefined();
    expect(await ok(['delete', 'configmap', 'settings'])).toContain('configmap "settings" deleted');
    expect(api.store.get('configmaps', 'settings', 'default')).toBeUndefined();
  });
});
