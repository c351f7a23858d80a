import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FakeApiServer } from '../../test/apiserver/server.ts';
import { startKubeconfigCredentials } from './credentials.ts';
import { createUpstream, type Upstream } from './upstream.ts';

function get(upstream: Upstream, path: string, passthrough = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, upstream.url), {
      agent: passthrough ? upstream.passthroughAgent : upstream.agent,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.end();
  });
}

describe('an upstream whose kubeconfig is still being resolved', () => {
  const api = new FakeApiServer({ tls: true });
  let dir: string;
  beforeAll(async () => {
    await api.start();
    dir = mkdtempSync(join(tmpdir(), 'hub-upstream-'));
  });
  afterAll(() => api.close());

  it('exists at once; its connections wait for the CA and client certificate', async () => {
    const creds = startKubeconfigCredentials(api.kubeconfigPath(dir));
    const upstream = createUpstream(creds.server, creds);
    try {
      // Created before the resolver child answered: only the resolved CA and
      // the admin's client certificate get a 200 for the namespaces.
      expect(creds.untilResolved()).toBeDefined();
      const waiting = upstream.agent;
      expect(await get(upstream, '/api/v1/namespaces')).toBe(200);
      expect(creds.untilResolved()).toBeUndefined();
      expect(upstream.agent).not.toBe(waiting);
      expect(await get(upstream, '/api/v1/namespaces')).toBe(200);
    } finally {
      upstream.destroy();
    }
  });

  it("presents the client certificate, or none on the passthrough agent (a client's own token)", async () => {
    const creds = startKubeconfigCredentials(api.kubeconfigPath(dir));
    const upstream = createUpstream(creds.server, creds);
    try {
      await creds.ready();
      expect(await get(upstream, '/api/v1/namespaces')).toBe(200);
      // Without a token of its own such a connection is anonymous: kube-apiserver says 401.
      expect(await get(upstream, '/api/v1/namespaces', true)).toBe(401);
    } finally {
      upstream.destroy();
    }
  });

  it('fails connections with why there are no credentials', async () => {
    const path = join(dir, 'broken');
    writeFileSync(
      path,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          { name: 'c', cluster: { server: api.url, 'certificate-authority': join(dir, 'no-ca') } },
        ],
        users: [{ name: 'u', user: {} }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    const errors: Error[] = [];
    const creds = startKubeconfigCredentials(path, { onRefreshError: (e) => errors.push(e) });
    const upstream = createUpstream(creds.server, creds);
    try {
      await expect(upstream.authorization()).resolves.toBeUndefined();
      const failure =
        /no upstream credentials yet: upstream kubeconfig .*broken: applying user "u"'s credentials failed: .*no-ca/;
      await expect(get(upstream, '/readyz')).rejects.toThrow(failure);
      await expect(get(upstream, '/readyz', true)).rejects.toThrow(failure);
      expect(errors).toHaveLength(1);
    } finally {
      upstream.destroy();
    }
  });
});
