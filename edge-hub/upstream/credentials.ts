import {
  filesChanged,
  resolveKubeconfigInChild,
  type KubeconfigResolution,
} from './kubeconfig-resolution.ts';
import { readKubeconfigServer } from './kubeconfig-server.ts';

/**
 * What the hub presents to kube-apiserver, read from a kubeconfig by
 * client-node's KubeConfig in a short-lived child process
 * (kubeconfig-resolver-child.ts): client-node would cost the hub ~80 MB
 * resident for as long as it runs.
 */
export interface UpstreamCredentials {
  /** The current context's cluster server, e.g. https://10.0.0.1:6443. */
  server: string;
  /** The CA, client certificate and key as last resolved. */
  tls(): UpstreamTls;
  /** Called when a re-read finds different TLS material (a rotated client certificate). */
  onTlsChange(fn: (tls: UpstreamTls) => void): void;
  /**
   * The hub's own `Authorization` header value, if its user has a token
   * (static, file, exec or auth-provider) or basic auth. Called per request
   * and per probe; never runs the resolver itself: a kubeconfig whose files
   * changed (checked at most every 30 s) or whose user is dynamic (exec,
   * auth-provider, token file: every 5 minutes) is re-resolved in the
   * background, so exec plugins do not run per request yet rotated tokens and
   * certificates are picked up.
   */
  authorization(): Promise<string | undefined>;
  /**
   * Until credentials first exist: a promise of their TLS material (rejected
   * with why there is none yet), on which new connections wait, so the hub
   * serves its cache at once while the kubeconfig is resolved. Undefined
   * once they exist (and for credentials that never wait).
   */
  untilResolved?(): Promise<UpstreamTls> | undefined;
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

/** How often authorization() may stat the kubeconfig and the files it references. */
export const FILE_CHECK_MS = 30_000;
/** exec plugins, auth-providers and token files are re-resolved this often even if no file changed. */
export const DYNAMIC_REFRESH_MS = 5 * 60_000;
/** A failed resolution is retried (with the last credentials kept meanwhile) after this long. */
export const RETRY_AFTER_FAILURE_MS = 30_000;

export interface KubeconfigCredentialsOptions {
  clock?: () => number;
  /** A re-resolution failed; the last credentials stay in use. */
  onRefreshError?: (err: Error) => void;
  /** Runs the resolver; tests substitute one, production spawns kubeconfig-resolver-child. */
  resolve?: (path: string) => Promise<KubeconfigResolution>;
}

/**
 * A kubeconfig's credentials, resolved in a child process (never more than
 * one at a time) and kept up to date from authorization() calls without
 * delaying them: the resolution runs in the background while the last
 * credentials are served. A failing refresh keeps the last credentials and
 * reports through onRefreshError.
 */
export class KubeconfigCredentials implements UpstreamCredentials {
  readonly server: string;
  readonly #path: string;
  readonly #clock: () => number;
  readonly #onRefreshError: (err: Error) => void;
  readonly #resolve: (path: string) => Promise<KubeconfigResolution>;
  readonly #tlsListeners: Array<(tls: UpstreamTls) => void> = [];
  #tls: UpstreamTls = { rejectUnauthorized: true };
  #current: KubeconfigResolution | undefined;
  #lastError: Error | undefined;
  /** The resolution or file check under way; at most one. */
  #inFlight: Promise<void> | undefined;
  /** The resolution under way, for untilResolved() before the first success. */
  #resolving: Promise<void> | undefined;
  #checkedAt: number;
  /** When a re-resolution is due whatever the files say (dynamic user, or after a failure). */
  #dueAt = Infinity;

  constructor(path: string, server: string, opts: KubeconfigCredentialsOptions = {}) {
    this.#path = path;
    this.server = server;
    this.#clock = opts.clock ?? Date.now;
    this.#onRefreshError = opts.onRefreshError ?? (() => {});
    this.#resolve = opts.resolve ?? ((p) => resolveKubeconfigInChild(p));
    this.#checkedAt = this.#clock();
    void this.#startResolution();
  }

  tls(): UpstreamTls {
    return this.#tls;
  }

  onTlsChange(fn: (tls: UpstreamTls) => void): void {
    this.#tlsListeners.push(fn);
  }

  untilResolved(): Promise<UpstreamTls> | undefined {
    if (this.#current !== undefined) return undefined;
    let attempt = this.#resolving;
    if (attempt === undefined) {
      // Failed before: every waiting connection fails with why, until the retry is due.
      if (this.#lastError !== undefined && this.#clock() < this.#dueAt) {
        return Promise.reject(this.#lastError);
      }
      attempt = this.#startResolution();
    }
    return attempt.then(() => {
      if (this.#current === undefined) {
        throw this.#lastError ?? new Error(`upstream kubeconfig ${this.#path}: not resolved`);
      }
      return this.#tls;
    });
  }

  /** Resolves once the first resolution succeeded; rejects with its error (the file, what is wrong). */
  async ready(): Promise<void> {
    await this.untilResolved();
  }

  async authorization(): Promise<string | undefined> {
    if (this.#current === undefined) {
      // Nothing to send yet: wait for the resolution under way (or retry a failed one when due).
      if (this.#resolving === undefined && this.#clock() >= this.#dueAt)
        void this.#startResolution();
      await this.#resolving;
      return this.#resolved()?.authorization;
    }
    this.#maybeRefresh();
    return this.#current.authorization;
  }

  #resolved(): KubeconfigResolution | undefined {
    return this.#current;
  }

  /** Tests: settles when the check or resolution under way (if any) has finished. */
  async idle(): Promise<void> {
    while (this.#inFlight !== undefined) await this.#inFlight;
  }

  #maybeRefresh(): void {
    if (this.#inFlight !== undefined) return;
    const now = this.#clock();
    if (now >= this.#dueAt) {
      void this.#startResolution();
      return;
    }
    if (now - this.#checkedAt < FILE_CHECK_MS) return;
    this.#checkedAt = now;
    const files = this.#current?.files ?? [];
    this.#inFlight = filesChanged(files)
      .then((changed) => {
        this.#inFlight = undefined;
        if (changed) void this.#startResolution();
      })
      .catch(() => {
        this.#inFlight = undefined;
      });
  }

  /** Never rejects: a failure is kept in #lastError and reported through onRefreshError. */
  #startResolution(): Promise<void> {
    if (this.#resolving !== undefined) return this.#resolving;
    const attempt = this.#resolve(this.#path).then(
      (resolved) => {
        const first = this.#current === undefined;
        this.#current = resolved;
        this.#lastError = undefined;
        this.#checkedAt = this.#clock();
        this.#dueAt = resolved.dynamic ? this.#checkedAt + DYNAMIC_REFRESH_MS : Infinity;
        // kubelet rotates its client certificate in place (kubelet-client-current.pem).
        if (first || !sameTls(this.#tls, resolved.tls)) {
          this.#tls = resolved.tls;
          for (const fn of this.#tlsListeners) fn(resolved.tls);
        }
      },
      (err: unknown) => {
        // A failing exec plugin must not take the node offline while the
        // last token may still be valid; retry after a while.
        const error = err instanceof Error ? err : new Error(String(err));
        this.#lastError = error;
        this.#checkedAt = this.#clock();
        this.#dueAt = this.#checkedAt + RETRY_AFTER_FAILURE_MS;
        this.#onRefreshError(error);
      },
    );
    const tracked = attempt.finally(() => {
      if (this.#inFlight === tracked) this.#inFlight = undefined;
      if (this.#resolving === tracked) this.#resolving = undefined;
    });
    this.#inFlight = tracked;
    this.#resolving = tracked;
    return tracked;
  }
}

/**
 * Starts resolving a kubeconfig's current context and returns at once: the
 * hub serves its cache meanwhile (connections wait on untilResolved()).
 * Throws only when the file cannot say where upstream is (the file, what is
 * missing); everything else is retried and reported through onRefreshError.
 */
export function startKubeconfigCredentials(
  path: string,
  opts: KubeconfigCredentialsOptions = {},
): KubeconfigCredentials {
  return new KubeconfigCredentials(path, readKubeconfigServer(path), opts);
}

/**
 * Loads a kubeconfig's current context and waits for its credentials. Errors
 * name the file and what is missing; they never include key material.
 */
export async function loadKubeconfigCredentials(
  path: string,
  opts: KubeconfigCredentialsOptions = {},
): Promise<KubeconfigCredentials> {
  // Quiet until ready: the first failure is this function's rejection.
  let loaded = false;
  const creds = startKubeconfigCredentials(path, {
    ...opts,
    onRefreshError: (err) => {
      if (loaded) opts.onRefreshError?.(err);
    },
  });
  await creds.ready();
  loaded = true;
  return creds;
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
