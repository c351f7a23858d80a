import type { RequestOptions } from 'node:https';

/** What the hub presents to kube-apiserver, read from a kubeconfig by client-node's KubeConfig. */
export interface UpstreamCredentials {
  /** The current context's cluster server, e.g. https://10.0.0.1:6443. */
  server: string;
  /** The CA, client certificate and key as last read (files are re-read with the token). */
  tls(): UpstreamTls;
  /** Called when a re-read finds different TLS material (a rotated client certificate). */
  onTlsChange(fn: (tls: UpstreamTls) => void): void;
  /**
   * The hub's own `Authorization` header value, if its user has a token
   * (static, file, exec or auth-provider) or basic auth. Called per request
   * and per probe; the kubeconfig's credentials are re-applied at most every
   * 30 s, so exec plugins do not run per request yet rotated tokens and
   * certificates are picked up.
   */
  authorization(): Promise<string | undefined>;
}

export interface UpstreamTls {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** false only when the kubeconfig says insecure-skip-tls-verify. */
  rejectUnauthorized: boolean;
  servername?: string;
}

/** No credentials of the hub's own: plain `--server` URLs, trusting the system's CAs. */
export function anonymousCredentials(server: string): UpstreamCredentials {
  const tls: UpstreamTls = { rejectUnauthorized: true };
  return {
    server,
    tls: () => tls,
    onTlsChange: () => {},
    authorization: () => Promise.resolve(undefined),
  };
}

const AUTH_REFRESH_MS = 30_000;

function asBuffer(v: unknown): Buffer | undefined {
  if (v === undefined || v === null) return undefined;
  if (Buffer.isBuffer(v)) return v;
  if (typeof v === 'string') return Buffer.from(v);
  return undefined;
}

function headerValue(headers: RequestOptions['headers']): string | undefined {
  if (headers === undefined || Array.isArray(headers)) return undefined;
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === 'authorization' && v !== undefined) return String(v);
  }
  return undefined;
}

/**
 * Loads a kubeconfig's current context. Errors name the file and what is
 * missing; they never include key material.
 */
export async function loadKubeconfigCredentials(
  path: string,
  opts: { clock?: () => number; onRefreshError?: (err: Error) => void } = {},
): Promise<UpstreamCredentials> {
  const clock = opts.clock ?? Date.now;
  // client-node costs ~60 MB resident once loaded; a hub given plain
  // --server URLs never pays for it.
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (err) {
    throw new Error(`reading upstream kubeconfig ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (cluster === null) {
    throw new Error(
      `upstream kubeconfig ${path}: the current context ${JSON.stringify(kc.getCurrentContext())} names no cluster`,
    );
  }
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    throw new Error(
      `upstream kubeconfig ${path}: cluster ${JSON.stringify(cluster.name)} has no valid server URL`,
    );
  }
  // KubeConfig refuses to build an agent for an http:// server unless TLS
  // verification is off; there is no TLS on such a server, so say so and let
  // it fill in the credentials.
  const effective = new KubeConfig();
  effective.loadFromClusterAndUser(
    server.protocol === 'http:' ? { ...cluster, skipTLSVerify: true } : cluster,
    user ?? { name: 'anonymous' },
  );

  const apply = async (): Promise<RequestOptions> => {
    const opts: RequestOptions = {};
    try {
      await effective.applyToHTTPSOptions(opts);
    } catch (err) {
      throw new Error(
        `upstream kubeconfig ${path}: applying user ${JSON.stringify(user?.name ?? '')}'s credentials failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return opts;
  };
  const authOf = (opts: RequestOptions): string | undefined => {
    const fromHeaders = headerValue(opts.headers);
    if (fromHeaders !== undefined) return fromHeaders;
    if (typeof opts.auth === 'string' && opts.auth !== '') {
      return `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    }
    return undefined;
  };

  const tlsOf = (applied: RequestOptions): UpstreamTls => {
    // (An http:// server was loaded as skip-verify above; it has no TLS to verify.)
    const tls: UpstreamTls = {
      rejectUnauthorized: server.protocol === 'http:' || applied.rejectUnauthorized !== false,
    };
    const ca = asBuffer(applied.ca);
    const cert = asBuffer(applied.cert);
    const key = asBuffer(applied.key);
    if (ca !== undefined) tls.ca = ca;
    if (cert !== undefined) tls.cert = cert;
    if (key !== undefined) tls.key = key;
    if (typeof applied.servername === 'string') tls.servername = applied.servername;
    return tls;
  };

  const first = await apply();
  let tls = tlsOf(first);
  let cached = authOf(first);
  let fetchedAt = clock();
  let refreshing: Promise<string | undefined> | undefined;
  const tlsListeners: Array<(tls: UpstreamTls) => void> = [];
  return {
    server: cluster.server,
    tls: () => tls,
    onTlsChange: (fn) => {
      tlsListeners.push(fn);
    },
    authorization: () => {
      if (clock() - fetchedAt < AUTH_REFRESH_MS) return Promise.resolve(cached);
      refreshing ??= apply()
        .then(
          (applied) => {
            cached = authOf(applied);
            fetchedAt = clock();
            // kubelet rotates its client certificate in place (kubelet-client-current.pem).
            const next = tlsOf(applied);
            if (!sameTls(tls, next)) {
              tls = next;
              for (const fn of tlsListeners) fn(next);
            }
            return cached;
          },
          (err: unknown) => {
            // A failing exec plugin must not take the node offline while the
            // last token may still be valid; retry after the next interval.
            fetchedAt = clock();
            opts.onRefreshError?.(err as Error);
            return cached;
          },
        )
        .finally(() => {
          refreshing = undefined;
        });
      return refreshing;
    },
  };
}

function sameBuffer(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}

function sameTls(a: UpstreamTls, b: UpstreamTls): boolean {
  return (
    a.rejectUnauthorized === b.rejectUnauthorized &&
    a.servername === b.servername &&
    sameBuffer(a.ca, b.ca) &&
    sameBuffer(a.cert, b.cert) &&
    sameBuffer(a.key, b.key)
  );
}
