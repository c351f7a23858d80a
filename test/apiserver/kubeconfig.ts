import { writeFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

/** A kubeconfig as kubectl and @kubernetes/client-node read it, credentials embedded as data. */

export interface KubeconfigContent {
  server: string;
  /** PEM of the CA that signed the serving certificate (https only). */
  caPem?: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  token?: string;
  namespace?: string;
  userName: string;
}

const b64 = (pem: string): string => Buffer.from(pem, 'utf8').toString('base64');

export function renderKubeconfig(c: KubeconfigContent): string {
  const cluster: Record<string, string> = { server: c.server };
  if (c.caPem !== undefined) cluster['certificate-authority-data'] = b64(c.caPem);
  const user: Record<string, string> = {};
  if (c.clientCertPem !== undefined) user['client-certificate-data'] = b64(c.clientCertPem);
  if (c.clientKeyPem !== undefined) user['client-key-data'] = b64(c.clientKeyPem);
  if (c.token !== undefined) user.token = c.token;
  const context: Record<string, string> = { cluster: 'edgebox-fake', user: c.userName };
  if (c.namespace !== undefined) context.namespace = c.namespace;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'edgebox-fake', cluster }],
    users: [{ name: c.userName, user }],
    contexts: [{ name: 'edgebox-fake', context }],
    'current-context': 'edgebox-fake',
    preferences: {},
  });
}

export function writeKubeconfigSync(path: string, c: KubeconfigContent): string {
  writeFileSync(path, renderKubeconfig(c), { mode: 0o600 });
  return path;
}

export async function writeKubeconfig(path: string, c: KubeconfigContent): Promise<string> {
  await writeFile(path, renderKubeconfig(c), { mode: 0o600 });
  return path;
}
