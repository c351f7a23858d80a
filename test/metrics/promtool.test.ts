import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeObject } from '../../controllers/testing/cluster-objects.ts';
import { FakeApiServer } from '../apiserver/server.ts';
import { KUBECTL_UA, KUBELET_UA, NODE, startApiAndHub, type Cleanups } from '../hub/hub-harness.ts';

const EDGEBOX = fileURLToPath(new URL('../../bin/edgebox.js', import.meta.url));

const cleanups: Cleanups = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Prometheus' own linter on an exposition; what it prints is what it found wrong. */
function promtoolCheck(exposition: string): { code: number | null; problems: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  if (r.error)
    throw new Error(`promtool: ${r.error.message} (.ci/apt-packages installs prometheus)`);
  return { code: r.status, problems: `${r.stdout}${r.stderr}`.trim() };
}

const METRICS_DOC = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');

/** Families a live process exposes that the generated reference (docs/metrics.md) does not name. */
function undocumented(exposition: string): string[] {
  return families(exposition).filter((name) => !METRICS_DOC.includes(`\`${name}\``));
}

/** The series names of an exposition, for checking the scrape is not empty. */
function families(exposition: string): string[] {
  return [...exposition.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] ?? '');
}

describe('every exposed metric passes promtool check metrics', () => {
  it("EdgeHub's /metrics, after online and offline reads", async () => {
    const { api, hub } = await startApiAndHub(cleanups);
    const get = (path: string, ua: string) =>
      fetch(`${hub.url}${path}`, { headers: { 'user-agent': ua } });
    await get(`/api/v1/pods?fieldSelector=spec.nodeName=${NODE}`, KUBELET_UA);
    await get('/api/v1/namespaces/default/pods/missing', KUBECTL_UA);
    await api.close();
    await get(`/api/v1/pods?fieldSelector=spec.nodeName=${NODE}`, KUBELET_UA);
    const text = await (await fetch(`http://127.0.0.1:${hub.metricsAddress.port}/metrics`)).text();
    expect(families(text)).toEqual(expect.arrayContaining(['edgebox_hub_requests_total']));
    expect(promtoolCheck(text)).toEqual({ code: 0, problems: '' });
    expect(undocumented(text)).toEqual([]);
  });

  it("the ECM's /metrics, leading a cluster", async () => {
    const api = new FakeApiServer({ tls: true });
    await api.start();
    const dir = mkdtempSync(join(tmpdir(), 'ecm-metrics-'));
    cleanups.push(async () => {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    });
    api.store.create('nodes', nodeObject('edge-1', { readyAt: Date.now() }));
    const child = spawn(
      process.execPath,
      [
        EDGEBOX,
        'ecm',
        '--kubeconfig',
        api.kubeconfigPath(dir),
        '--leader-elect-namespace',
        'kube-system',
      ].concat(['--metrics-listen', '127.0.0.1:0']),
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let stderr = '';
    const listen = await new Promise<string>((resolve, reject) => {
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr += c;
        const serving = stderr.split('\n').find((l) => l.includes('serving /healthz and /metrics'));
        const leading = stderr.includes('became leader');
        if (serving && leading) resolve((JSON.parse(serving) as { listen: string }).listen);
      });
      child.on('exit', (code) =>
        reject(new Error(`edgebox ecm exited (${String(code)}): ${stderr}`)),
      );
    });
    const text = await (await fetch(`http://${listen}/metrics`)).text();
    expect(families(text)).toEqual(expect.arrayContaining(['edgebox_ecm_is_leader']));
    expect(promtoolCheck(text)).toEqual({ code: 0, problems: '' });
    expect(undocumented(text)).toEqual([]);
  });
});
