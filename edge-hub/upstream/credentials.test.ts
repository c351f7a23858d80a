import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  DYNAMIC_REFRESH_MS,
  KubeconfigCredentials,
  loadKubeconfigCredentials,
  startKubeconfigCredentials,
  type UpstreamTls,
} from './credentials.ts';
import {
  childExecArgv,
  resolveKubeconfigInChild,
  type KubeconfigResolution,
} from './kubeconfig-resolution.ts';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'hub-creds-'));
}

function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  const path = join(tempDir(), 'kubeconfig');
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster }],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
  return path;
}

/** Replaces a file the way kubelet and token projectors do: write aside, rename over. */
function rotate(path: string, content: string): void {
  writeFileSync(`${path}.new`, content);
  renameSync(`${path}.new`, path);
}

/**
 * An exec credential plugin (client.authentication.k8s.io) that counts its
 * runs in `dir/runs` and answers token `tok-<run>`; from run `failFrom` on it fails.
 */
function execPlugin(dir: string, failFrom = Infinity): Record<string, unknown> {
  const script = join(dir, 'plugin.mjs');
  const runs = join(dir, 'runs');
  writeFileSync(runs, '0');
  writeFileSync(
    script,
    `import { readFileSync, writeFileSync } from 'node:fs';
const n = Number(readFileSync(${JSON.stringify(runs)}, 'utf8')) + 1;
writeFileSync(${JSON.stringify(runs)}, String(n));
if (n >= ${failFrom}) { process.stderr.write('token service unreachable'); process.exit(1); }
process.stdout.write(JSON.stringify({
  apiVersion: 'client.authentication.k8s.io/v1beta1',
  kind: 'ExecCredential',
  status: { token: 'tok-' + n },
}));
`,
  );
  return {
    exec: {
      apiVersion: 'client.authentication.k8s.io/v1beta1',
      command: process.execPath,
      args: [script],
    },
  };
}

const runsOf = (dir: string) => Number(readFileSync(join(dir, 'runs'), 'utf8'));

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('upstream credentials from a kubeconfig, resolved in a child process', () => {
  it('takes the server and bearer token of an http server', async () => {
    const creds = await loadKubeconfigCredentials(
      kubeconfig({ server: 'http://10.0.0.1:8080' }, { token: 'abc' }),
    );
    expect(creds.server).toBe('http://10.0.0.1:8080');
    expect(await creds.authorization()).toBe('Bearer abc');
    expect(creds.tls().rejectUnauthorized).toBe(true);
  });

  it('takes CA, client certificate and key, and honours insecure-skip-tls-verify', async () => {
    const creds = await loadKubeconfigCredentials(
      kubeconfig(
        {
          server: 'https://k:6443',
          'certificate-authority-data': b64('CA'),
          'tls-server-name': 'kubernetes',
        },
        { 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') },
      ),
    );
    const tls = creds.tls();
    expect(tls.ca?.toString()).toBe('CA');
    expect(tls.cert?.toString()).toBe('CERT');
    expect(tls.key?.toString()).toBe('KEY');
    expect(tls.servername).toBe('kubernetes');
    expect(tls.rejectUnauthorized).toBe(true);
    expect(await creds.authorization()).toBeUndefined();
    const insecure = await loadKubeconfigCredentials(
      kubeconfig({ server: 'https://k:6443', 'insecure-skip-tls-verify': true }, {}),
    );
    expect(insecure.tls().rejectUnauthorized).toBe(false);
  });

  it('sends basic auth as a header', async () => {
    const creds = await loadKubeconfigCredentials(
      kubeconfig({ server: 'https://k:6443' }, { username: 'admin', password: 'pw' }),
    );
    expect(await creds.authorization()).toBe(`Basic ${b64('admin:pw')}`);
  });

  it('picks up a rotated client certificate file once its change is seen (every 30 s)', async () => {
    let now = 0;
    const dir = tempDir();
    const certFile = join(dir, 'kubelet-client-current.pem');
    writeFileSync(certFile, 'CERT-1');
    const path = kubeconfig(
      { server: 'https://k:6443' },
      { 'client-certificate': certFile, 'client-key': certFile },
    );
    const creds = await loadKubeconfigCredentials(path, { clock: () => now });
    const seen: UpstreamTls[] = [];
    creds.onTlsChange((tls) => seen.push(tls));
    expect(creds.tls().cert?.toString()).toBe('CERT-1');
    rotate(certFile, 'CERT-2');
    now = 1000;
    await creds.authorization();
    await creds.idle();
    expect(seen).toHaveLength(0);
    now = 31_000;
    await creds.authorization();
    await creds.idle();
    expect(seen.map((t) => t.cert?.toString())).toEqual(['CERT-2']);
    expect(creds.tls().cert?.toString()).toBe('CERT-2');
    now = 62_000;
    await creds.authorization();
    await creds.idle();
    expect(seen).toHaveLength(1);
  });

  it('picks up a rotated token file', async () => {
    let now = 0;
    const dir = tempDir();
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'tok-1');
    const creds = await loadKubeconfigCredentials(
      kubeconfig({ server: 'https://k:6443' }, { 'token-file': tokenFile }),
      { clock: () => now },
    );
    expect(await creds.authorization()).toBe('Bearer tok-1');
    rotate(tokenFile, 'tok-2');
    now = 31_000;
    // The answer is never delayed by the resolver: the last token until the new one is in.
    expect(await creds.authorization()).toBe('Bearer tok-1');
    await creds.idle();
    expect(await creds.authorization()).toBe('Bearer tok-2');
  });

  it('runs an exec plugin once per 5 minutes, not per request', async () => {
    let now = 0;
    const dir = tempDir();
    const creds = await loadKubeconfigCredentials(
      kubeconfig({ server: 'https://k:6443' }, execPlugin(dir)),
      { clock: () => now },
    );
    for (const t of [0, 1000, 31_000, 120_000, DYNAMIC_REFRESH_MS - 1]) {
      now = t;
      expect(await creds.authorization()).toBe('Bearer tok-1');
      await creds.idle();
    }
    expect(runsOf(dir)).toBe(1);
    now = DYNAMIC_REFRESH_MS;
    await creds.authorization();
    await creds.idle();
    expect(await creds.authorization()).toBe('Bearer tok-2');
    expect(runsOf(dir)).toBe(2);
  });

  it('keeps the last credentials when a refresh fails, and says why', async () => {
    let now = 0;
    const dir = tempDir();
    const errors: Error[] = [];
    const creds = await loadKubeconfigCredentials(
      kubeconfig({ server: 'https://k:6443' }, execPlugin(dir, 2)),
      { clock: () => now, onRefreshError: (e) => errors.push(e) },
    );
    now = DYNAMIC_REFRESH_MS;
    await creds.authorization();
    await creds.idle();
    expect(await creds.authorization()).toBe('Bearer tok-1');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toMatch(
      /upstream kubeconfig .*kubeconfig: applying user "u"'s credentials failed: .*token service unreachable/,
    );
    // Retried 30 s later, not per request.
    await creds.authorization();
    await creds.idle();
    expect(runsOf(dir)).toBe(2);
    now = DYNAMIC_REFRESH_MS + 30_000;
    await creds.authorization();
    await creds.idle();
    expect(runsOf(dir)).toBe(3);
    expect(errors).toHaveLength(2);
  });

  it('names the file and the problem when it cannot be used, without key material', async () => {
    await expect(loadKubeconfigCredentials('/nonexistent/kubeconfig')).rejects.toThrow(
      /reading upstream kubeconfig \/nonexistent\/kubeconfig/,
    );
    const empty = join(tempDir(), 'empty');
    writeFileSync(
      empty,
      stringify({ apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [] }),
    );
    await expect(loadKubeconfigCredentials(empty)).rejects.toThrow(/names no cluster/);
    // The child's own checks, for a file changed after the hub read the server from it.
    await expect(resolveKubeconfigInChild(empty)).rejects.toThrow(
      new RegExp(`upstream kubeconfig ${empty}: the current context .* names no cluster`),
    );
    const noServer = kubeconfig({ server: 'not a url' }, {});
    await expect(resolveKubeconfigInChild(noServer)).rejects.toThrow(
      /cluster "c" has no valid server URL/,
    );
    const missingCa = kubeconfig(
      { server: 'https://k:6443', 'certificate-authority': '/nonexistent/ca.crt' },
      { 'client-key-data': b64('SECRET-KEY'), token: 'SECRET-TOKEN' },
    );
    const err = await loadKubeconfigCredentials(missingCa).then(
      () => new Error('resolved'),
      (e: unknown) => e as Error,
    );
    expect(err.message).toMatch(
      /upstream kubeconfig .*: applying user "u"'s credentials failed: .*\/nonexistent\/ca\.crt/,
    );
    expect(err.message).not.toMatch(/SECRET|U0VDUkVU/);
  });

  it('kills a resolver that hangs and reports it', async () => {
    const dir = tempDir();
    const hang = join(dir, 'hang.mjs');
    writeFileSync(hang, 'setInterval(() => {}, 1000);\n');
    const path = kubeconfig(
      { server: 'https://k:6443' },
      {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          command: process.execPath,
          args: [hang],
        },
      },
    );
    await expect(resolveKubeconfigInChild(path, { timeoutMs: 1500 })).rejects.toThrow(
      `resolving upstream kubeconfig ${path}: the resolver did not finish within 1500 ms; killed it`,
    );
  });

  it('starts at once and runs one resolver at a time', async () => {
    const path = kubeconfig({ server: 'https://k:6443' }, {});
    let calls = 0;
    let finish: (r: KubeconfigResolution) => void = () => {};
    const creds = startKubeconfigCredentials(path, {
      resolve: () => {
        calls++;
        return new Promise((resolve) => (finish = resolve));
      },
    });
    expect(creds).toBeInstanceOf(KubeconfigCredentials);
    expect(creds.server).toBe('https://k:6443');
    const waiting = [creds.authorization(), creds.authorization(), creds.untilResolved()];
    expect(calls).toBe(1);
    const tls: UpstreamTls = { rejectUnauthorized: true, ca: Buffer.from('CA') };
    finish({ server: 'https://k:6443', tls, authorization: 'Bearer t', dynamic: false, files: [] });
    expect(await Promise.all(waiting)).toEqual(['Bearer t', 'Bearer t', tls]);
    expect(creds.untilResolved()).toBeUndefined();
    expect(calls).toBe(1);
  });
});

describe("the resolver child's Node flags", () => {
  it("keeps the hub's V8 and warning flags, never its script, preloads or debugger", () => {
    expect(
      childExecArgv([
        '--input-type=module',
        '-e',
        'await hub()',
        '--import',
        'file:///hook.mjs',
        '--require=./pre.cjs',
        '--experimental-loader',
        './l.mjs',
        '--inspect=9229',
        '--max-semi-space-size=2',
        '--no-maglev',
        '--no-warnings',
        '--conditions',
        'development',
        '--experimental-transform-types',
      ]),
    ).toEqual([
      '--max-semi-space-size=2',
      '--no-maglev',
      '--no-warnings',
      '--conditions',
      'development',
      '--experimental-transform-types',
    ]);
  });
});
