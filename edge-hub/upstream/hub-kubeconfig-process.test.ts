import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from '../../test/apiserver/server.ts';
import { ImportRecorder } from '../../test/support/import-recorder.ts';

const EDGEBOX = fileURLToPath(new URL('../../bin/edgebox.js', import.meta.url));

describe('edgebox hub --upstream-kubeconfig', () => {
  const api = new FakeApiServer({ tls: true });
  beforeAll(() => api.start());
  afterAll(() => api.close());

  it('reaches an https apiserver with the kubeconfig without loading client-node itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hub-kubeconfig-'));
    const imports = new ImportRecorder(dir);
    const hub = spawn(
      process.execPath,
      [
        '--import',
        imports.hookUrl,
        EDGEBOX,
        'hub',
        '--upstream-kubeconfig',
        api.kubeconfigPath(dir),
        '--listen',
        '127.0.0.1:0',
        '--metrics-listen',
        '127.0.0.1:0',
        '--data-dir',
        join(dir, 'data'),
        '--node-name',
        'node-1',
        '--health-interval',
        '200ms',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    try {
      // "upstream up" needs the CA and client certificate: the resolver child ran.
      await new Promise<void>((resolve, reject) => {
        hub.stderr.setEncoding('utf8').on('data', (c: string) => {
          log += c;
          if (log.includes('"msg":"upstream up"')) resolve();
        });
        hub.on('exit', (code) => reject(new Error(`the hub exited with ${code}: ${log}`)));
      });
    } finally {
      hub.kill('SIGKILL');
    }
    expect(imports.resolvedBy(hub.pid, '/@kubernetes/client-node/')).toEqual([]);
    // The recorder saw the hub load its own modules, so the empty list means something.
    expect(imports.resolvedBy(hub.pid, '/edge-hub/upstream/credentials.ts')).not.toEqual([]);
  }, 30_000);
});
