import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeApiServer } from '../../test/apiserver/server.ts';

const EDGEBOX = fileURLToPath(new URL('../../bin/edgebox.js', import.meta.url));

/** A module preloaded with --import that notes every client-node module its process resolves. */
function importRecorder(dir: string): { hook: string; seen: string } {
  const seen = join(dir, 'client-node-loaded.txt');
  const hook = join(dir, 'note-imports.mjs');
  writeFileSync(
    hook,
    `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context);
    if (result.url.includes('/@kubernetes/client-node/')) {
      appendFileSync(${JSON.stringify(seen)}, process.pid + ' ' + result.url + '\\n');
    }
    return result;
  },
});
`,
  );
  return { hook, seen };
}

describe('edgebox hub --upstream-kubeconfig', () => {
  const api = new FakeApiServer({ tls: true });
  beforeAll(() => api.start());
  afterAll(() => api.close());

  it('reaches an https apiserver with the kubeconfig without loading client-node itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hub-kubeconfig-'));
    const { hook, seen } = importRecorder(dir);
    const hub = spawn(
      process.execPath,
      [
        '--import',
        pathToFileURL(hook).href,
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
    const loaded = existsSync(seen) ? readFileSync(seen, 'utf8') : '';
    expect(loaded.split('\n').filter((l) => l.startsWith(`${hub.pid} `))).toEqual([]);
  }, 30_000);
});
