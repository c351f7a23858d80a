import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeApiServer } from '../apiserver/server.ts';
import { loadHubOptions } from '../../edge-hub/config.ts';
import { hubStatusReport } from '../../edge-hub/status-command.ts';
import { KUBELET_UA, call, startTestHub, tempDir, until } from './hub-harness.ts';

const EDGEBOX = fileURLToPath(new URL('../../bin/edgebox.js', import.meta.url));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fakeApi(): Promise<FakeApiServer> {
  const api = new FakeApiServer();
  await api.start();
  cleanups.push(() => api.close());
  api.store.create('configmaps', {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'cfg', namespace: 'default' },
  });
  return api;
}

function dir(): string {
  const d = tempDir('hub-cli-');
  cleanups.push(d.remove);
  return d.path;
}

/** A store in which a hub, now stopped, recorded kubelet's list of configmaps. */
async function storeWithKubeletList(api: FakeApiServer): Promise<string> {
  const data = dir();
  const hub = await startTestHub({ server: [api.url], dataDir: data });
  await call(`${hub.url}/api/v1/namespaces/default/configmaps`, {
    headers: { 'User-Agent': KUBELET_UA },
  });
  await hub.close();
  return data;
}

interface Run {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exit: Promise<number | null>;
}

function edgebox(args: string[]): Run {
  const child = spawn(process.execPath, [EDGEBOX, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, EDGEBOX_LOG_LEVEL: 'info' },
  });
  let stderr = '';
  let stdout = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  cleanups.push(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, stderr: () => stderr, stdout: () => stdout, exit };
}

describe('edgebox hub (CLI)', () => {
  it('runs until SIGTERM, then shuts down gracefully and releases the store', async () => {
    const api = await fakeApi();
    const data = dir();
    const run = edgebox([
      'hub',
      '--server',
      api.url,
      '--listen',
      '127.0.0.1:0',
      '--metrics-listen',
      '127.0.0.1:0',
      '--data-dir',
      data,
      '--node-name',
      'edge-1',
      '--health-interval',
      '200ms',
    ]);
    await until(() => run.stderr().includes('edgebox hub serving'), 'the hub to start', 20_000);
    const started = JSON.parse(
      run
        .stderr()
        .split('\n')
        .find((l) => l.includes('edgebox hub serving')) ?? '{}',
    ) as { listen: string };
    const r = await call(`${started.listen}/api/v1/namespaces/default/configmaps`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    expect(r.status).toBe(200);
    expect(r.headers['x-edgebox-source']).toBe('upstream');

    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(0);
    expect(run.stderr()).toContain('edgebox hub stopped');
    // The store was closed: `hub status` can open it and sees what was cached.
    const report = await hubStatusReport(
      loadHubOptions({ flags: { dataDir: data, listen: '127.0.0.1:1' }, env: {} }),
    );
    expect(report).toContain('EdgeHub is not running');
    expect(report).toMatch(/kubelet\s*│\s*configmaps\s*│\s*1\s*│/);
  });

  it('fails at start with one line naming the bad flag', async () => {
    const run = edgebox(['hub', '--server', 'http://127.0.0.1:1', '--health-interval', 'soon']);
    expect(await run.exit).toBe(2);
    expect(run.stderr().trim()).toBe(
      'edgebox: invalid configuration: healthInterval = "soon" (from --health-interval): invalid duration "soon": expected a Go duration such as 300ms, 5s, 1h30m',
    );
  });

  it('hub status asks the running hub and prints a table with upstream state', async () => {
    const api = await fakeApi();
    const data = dir();
    const hub = await startTestHub({ server: [api.url], dataDir: data });
    cleanups.push(() => hub.close());
    await call(`${hub.url}/api/v1/namespaces/default/configmaps`, {
      headers: { 'User-Agent': KUBELET_UA },
    });
    await hub.remote.drain();
    await until(() => hub.health.overall() === 'up', 'upstream up');
    const options = loadHubOptions({
      flags: { listen: `127.0.0.1:${hub.address.port}`, dataDir: '/nonexistent' },
      env: {},
    });
    const report = await hubStatusReport(options);
    expect(report).toContain('EdgeHub (running) on node edge-1');
    expect(report).toMatch(/component\s*│\s*resource\s*│\s*objects\s*│\s*last sync/);
    expect(report).toMatch(/kubelet\s*│\s*configmaps\s*│\s*1\s*│\s*\d{4}-\d\d-\d\dT/);
    expect(report).toContain(`upstream ${api.url}: reachable`);

    await api.stop();
    await until(() => hub.health.overall() === 'down', 'upstream down');
    expect(await hubStatusReport(options)).toContain(`upstream ${api.url}: unreachable`);
  });

  it('hub status with no hub running reads the store and probes upstream itself', async () => {
    const api = await fakeApi();
    const data = await storeWithKubeletList(api);
    const options = (server: string[]) =>
      loadHubOptions({ flags: { listen: '127.0.0.1:1', dataDir: data, server }, env: {} });
    const up = await hubStatusReport(options([api.url]));
    expect(up).toMatch(/kubelet\s*│\s*configmaps\s*│\s*1/);
    expect(up).toContain(`upstream ${api.url}: reachable`);
    await api.stop();
    expect(await hubStatusReport(options([api.url]))).toContain(`upstream ${api.url}: unreachable`);
    expect(await hubStatusReport(options([]))).toContain('upstream: unknown');
  });

  it('hub status takes --data-dir and --listen from the command line or the config file', async () => {
    const api = await fakeApi();
    const data = await storeWithKubeletList(api);
    await api.stop();
    const file = `${dir()}/hub.yaml`;
    writeFileSync(file, `dataDir: ${data}\nlisten: 127.0.0.1:1\nserver: [${api.url}]\n`);
    for (const args of [
      ['hub', 'status', '--config', file],
      ['hub', 'status', '--data-dir', data, '--listen', '127.0.0.1:1'],
    ]) {
      const run = edgebox(args);
      expect(await run.exit, run.stderr()).toBe(0);
      expect(run.stdout()).toMatch(/kubelet\s*│\s*configmaps\s*│\s*1/);
    }
  });
});
