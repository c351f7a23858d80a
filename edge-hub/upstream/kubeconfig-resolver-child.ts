/**
 * Entry module of the short-lived process that reads the hub's kubeconfig with
 * client-node's KubeConfig: `node kubeconfig-resolver-child.ts <kubeconfig>`.
 * It writes ONE JSON document (a ResolverChildDocument) on stdout and exits.
 *
 * client-node costs ~80 MB resident once loaded; resolving here keeps it out
 * of the long-running hub (kubeconfig-resolution.ts spawns this module).
 * The document carries key material: whoever reads stdout must never log it.
 */
import { readFileSync, statSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

/** A file the resolution read, as it was just before it was read. */
export interface ResolvedFileStamp {
  path: string;
  /** -1 when the file could not be stat'ed (its read then failed too). */
  mtimeMs: number;
  size: number;
  ino: number;
}

export type ResolverChildDocument =
  | {
      ok: true;
      /** The current context's cluster server. */
      server: string;
      /** PEM or DER bytes, base64. */
      ca?: string;
      cert?: string;
      key?: string;
      rejectUnauthorized: boolean;
      servername?: string;
      /** The `Authorization` header value for the hub's own requests. */
      authorization?: string;
      /** exec plugin, auth-provider or token file: worth re-running periodically. */
      dynamic: boolean;
      files: ResolvedFileStamp[];
    }
  | {
      ok: false;
      /** Names the kubeconfig and what is wrong; never key material. */
      error: string;
      files: ResolvedFileStamp[];
    };

function stamp(path: string): ResolvedFileStamp {
  try {
    const s = statSync(path);
    return { path, mtimeMs: s.mtimeMs, size: s.size, ino: s.ino };
  } catch {
    return { path, mtimeMs: -1, size: -1, ino: -1 };
  }
}

function base64Of(v: unknown): string | undefined {
  if (Buffer.isBuffer(v)) return v.toString('base64');
  if (typeof v === 'string') return Buffer.from(v).toString('base64');
  return undefined;
}

function headerValue(headers: RequestOptions['headers']): string | undefined {
  if (headers === undefined || Array.isArray(headers)) return undefined;
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === 'authorization' && v !== undefined) return String(v);
  }
  return undefined;
}

function recordOf(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/**
 * The current user's `token-file` as written in the kubeconfig: client-node
 * reads it while loading but keeps only the token, so the path comes from the
 * YAML itself (relative paths are read from the working directory, as
 * client-node does).
 */
function tokenFileOf(text: string, userName: string): string | undefined {
  const doc = recordOf(parseYaml(text));
  const users = Array.isArray(doc?.users) ? (doc.users as unknown[]) : [];
  for (const entry of users) {
    const e = recordOf(entry);
    if (e?.name !== userName) continue;
    const file = recordOf(e.user)?.['token-file'];
    return typeof file === 'string' && file !== '' ? resolve(file) : undefined;
  }
  return undefined;
}

export async function resolveKubeconfig(path: string): Promise<ResolverChildDocument> {
  const files: ResolvedFileStamp[] = [stamp(path)];
  const failed = (error: string): ResolverChildDocument => ({ ok: false, error, files });
  // Loaded here, not at the top, so a failure to load it is reported as a document too.
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
    kc.loadFromFile(path);
  } catch (err) {
    return failed(`reading upstream kubeconfig ${path}: ${(err as Error).message}`);
  }
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (cluster === null) {
    return failed(
      `upstream kubeconfig ${path}: the current context ${JSON.stringify(kc.getCurrentContext())} names no cluster`,
    );
  }
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    return failed(
      `upstream kubeconfig ${path}: cluster ${JSON.stringify(cluster.name)} has no valid server URL`,
    );
  }
  let tokenFile: string | undefined;
  try {
    tokenFile = user === null ? undefined : tokenFileOf(text, user.name);
  } catch {
    tokenFile = undefined; // client-node parsed it; a YAML quirk only costs the rotation check
  }
  const providerConfig = recordOf(recordOf(user?.authProvider)?.config);
  const providerTokenFile = providerConfig?.tokenFile;
  for (const referenced of [
    cluster.caFile,
    user?.certFile,
    user?.keyFile,
    tokenFile,
    typeof providerTokenFile === 'string' ? resolve(providerTokenFile) : undefined,
  ]) {
    if (referenced !== undefined && referenced !== null && referenced !== '') {
      if (!files.some((f) => f.path === referenced)) files.push(stamp(referenced));
    }
  }

  // KubeConfig refuses to build an agent for an http:// server unless TLS
  // verification is off; there is no TLS on such a server, so say so and let
  // it fill in the credentials.
  const effective = new KubeConfig();
  effective.loadFromClusterAndUser(
    server.protocol === 'http:' ? { ...cluster, skipTLSVerify: true } : cluster,
    user ?? { name: 'anonymous' },
  );
  const applied: RequestOptions = {};
  try {
    await effective.applyToHTTPSOptions(applied);
  } catch (err) {
    return failed(
      `upstream kubeconfig ${path}: applying user ${JSON.stringify(user?.name ?? '')}'s credentials failed: ${(err as Error).message}`,
    );
  }
  let authorization = headerValue(applied.headers);
  if (authorization === undefined && typeof applied.auth === 'string' && applied.auth !== '') {
    authorization = `Basic ${Buffer.from(applied.auth).toString('base64')}`;
  }
  const doc: ResolverChildDocument = {
    ok: true,
    server: cluster.server,
    // (An http:// server was loaded as skip-verify above; it has no TLS to verify.)
    rejectUnauthorized: server.protocol === 'http:' || applied.rejectUnauthorized !== false,
    dynamic:
      user !== null &&
      (Boolean(user.exec) || Boolean(user.authProvider) || tokenFile !== undefined),
    files,
  };
  const ca = base64Of(applied.ca);
  const cert = base64Of(applied.cert);
  const key = base64Of(applied.key);
  if (ca !== undefined) doc.ca = ca;
  if (cert !== undefined) doc.cert = cert;
  if (key !== undefined) doc.key = key;
  if (typeof applied.servername === 'string') doc.servername = applied.servername;
  if (authorization !== undefined) doc.authorization = authorization;
  return doc;
}

async function main(): Promise<void> {
  const path = process.argv[2];
  let doc: ResolverChildDocument;
  if (path === undefined || path === '') {
    doc = { ok: false, error: 'the kubeconfig resolver needs a kubeconfig path', files: [] };
  } else {
    try {
      doc = await resolveKubeconfig(path);
    } catch (err) {
      doc = {
        ok: false,
        error: `upstream kubeconfig ${path}: ${(err as Error).message}`,
        files: [],
      };
    }
  }
  // The exit waits for stdout to drain (a pipe); an exec plugin's handles must not keep us alive.
  process.stdout.write(`${JSON.stringify(doc)}\n`, () => process.exit(0));
}

if (import.meta.main) await main();
