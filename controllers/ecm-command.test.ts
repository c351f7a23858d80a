import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeApiServer } from '../test/apiserver/server.ts';
import { CliError } from '../src/cli.ts';
import { defaultEcmConfig } from './config.ts';
import { runEcm } from './ecm-main.ts';
import { nodeObject } from './testing/cluster-objects.ts';

const EDGEBOX = fileURLToPath(new URL('../bin/edgebox.js', import.meta.url));
const LEASE = '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/edgebox-ecm';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Run {
  child: ChildProcess;
  stderr: () => string;
  /** Resolves with the first stderr line that contains `text`. */
  line: (text: string) => Promise<string>;
  exit: Promise<number | null>;
}

function edgebox(args: string[]): Run {
  const child = spawn(process.execPath, [EDGEBOX, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const waiters: { text: string; resolve: (line: string) => void }[] = [];
  const check = (): void => {
    for (const w of [...waiters]) {
      const line = stderr.split('\n').find((l) => l.includes(w.text));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
    check();
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  cleanups.push(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    stderr: () => stderr,
    line: (text) =>
      new Promise((resolve, reject) => {
        waiters.push({ text, resolve });
        check();
        void exit.then((code) =>
          reject(new Error(`edgebox exited (${String(code)}) before logging "${text}": ${stderr}`)),
        );
      }),
    exit,
  };
}

describe('edgebox ecm (CLI)', () => {
  it('runs with --kubeconfig, serves /healthz and /metrics, and hands its lease back on SIGTERM', async () => {
    const api = new FakeApiServer({ tls: true });
    await api.start();
    const dir = mkdtempSync(join(tmpdir(), 'ecm-cli-'));
    cleanups.push(async () => {
      await api.close();
      rmSync(dir, { recursive: true, force: true });
    });
    api.store.create('nodes', nodeObject('edge-1', { readyAt: Date.now() }));

    const run = edgebox([
      'ecm',
      '--kubeconfig',
      api.kubeconfigPath(dir),
      '--mode',
      'standalone',
      '--leader-elect-namespace',
      'kube-system',
      '--metrics-listen',
      '127.0.0.1:0',
    ]);
    const serving = JSON.parse(await run.line('serving /healthz and /metrics')) as {
      listen: string;
    };
    await run.line('became leader');
    await api.requestLog.waitFor(
      (r) => r.method === 'POST' && r.path === '/api/v1/namespaces/default/events',
      20_000,
    );
    const base = `http://${serving.listen}`;
    const health = await fetch(`${base}/healthz`);
    expect(`${health.status} ${await health.text()}`).toBe('200 ok: leading\n');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('edgebox_ecm_is_leader 1');
    expect(metrics).toContain('edgebox_ecm_nodes{state="ready"} 1');

    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(0);
    expect(run.stderr()).toContain('shutting down');
    // Released, so a standby takes over at once instead of after the lease duration.
    const lease = api.store.mustGet('leases', 'edgebox-ecm', 'kube-system') as unknown as {
      spec: { holderIdentity?: string; leaseDurationSeconds: number };
    };
    expect(lease.spec.holderIdentity ?? '').toBe('');
    expect(lease.spec.leaseDurationSeconds).toBe(1);
    expect(api.requests.some((r) => r.method === 'PUT' && r.path === LEASE)).toBe(true);
  });

  it('stops on SIGTERM while the apiserver cannot be reached', { timeout: 30_000 }, async () => {
    const api = new FakeApiServer({ tls: true });
    await api.start();
    const dir = mkdtempSync(join(tmpdir(), 'ecm-cli-'));
    const kubeconfig = api.kubeconfigPath(dir);
    await api.close();
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));

    const run = edgebox(['ecm', '--kubeconfig', kubeconfig, '--metrics-listen', '127.0.0.1:0']);
    const serving = JSON.parse(await run.line('serving /healthz and /metrics')) as {
      listen: string;
    };
    await run.line('informer failed; restarting');
    const health = await fetch(`http://${serving.listen}/healthz`);
    expect(`${health.status} ${await health.text()}`).toBe('503 not ok: informers not synced\n');
    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(0);
  });

  it('fails at start, before listening, when the kubeconfig cannot be read', async () => {
    const config = defaultEcmConfig({ kubeconfig: '/nonexistent/kubeconfig', logLevel: 'fatal' });
    const failure = runEcm(config);
    await expect(failure).rejects.toBeInstanceOf(CliError);
    await expect(failure).rejects.toThrow(
      /^loading kubeconfig \/nonexistent\/kubeconfig failed: .*no such file/,
    );
  });
});
