import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadKubeconfigCredentials, type UpstreamTls } from './credentials.ts';

function kubeconfig(cluster: Record<string, unknown>, user: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'hub-creds-'));
  const path = join(dir, 'kubeconfig');
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

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('upstream credentials from a kubeconfig', () => {
  it('takes the server and bearer token', async () => {
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

  it('picks up a rotated client certificate file on the next refresh', async () => {
    let now = 0;
    const dir = mkdtempSync(join(tmpdir(), 'hub-rotate-'));
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
    writeFileSync(certFile, 'CERT-2');
    now = 1000;
    await creds.authorization();
    expect(seen).toHaveLength(0);
    now = 31_000;
    await creds.authorization();
    expect(seen.map((t) => t.cert?.toString())).toEqual(['CERT-2']);
    expect(creds.tls().cert?.toString()).toBe('CERT-2');
    now = 62_000;
    await creds.authorization();
    expect(seen).toHaveLength(1);
  });

  it('names the file and the problem when it cannot be used', async () => {
    await expect(loadKubeconfigCredentials('/nonexistent/kubeconfig')).rejects.toThrow(
      /reading upstream kubeconfig \/nonexistent\/kubeconfig/,
    );
    const dir = mkdtempSync(join(tmpdir(), 'hub-creds-'));
    const path = join(dir, 'empty');
    writeFileSync(
      path,
      stringify({ apiVersion: 'v1', kind: 'Config', clusters: [], users: [], contexts: [] }),
    );
    await expect(loadKubeconfigCredentials(path)).rejects.toThrow(/names no cluster/);
  });
});
