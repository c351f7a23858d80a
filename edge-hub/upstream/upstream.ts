import type { Agent as HttpAgent, ClientRequestArgs } from 'node:http';
import { Agent as HttpsAgent, type RequestOptions as HttpsRequestOptions } from 'node:https';
import { createConnection as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { nodeHttp } from '../node-http.ts';
import {
  anonymousCredentials,
  startKubeconfigCredentials,
  type UpstreamCredentials,
  type UpstreamTls,
} from './credentials.ts';

/** One kube-apiserver the hub can forward to. */
export interface Upstream {
  /** The server URL as configured; names the upstream in logs, metrics and status. */
  readonly name: string;
  readonly url: URL;
  /** Connections that present the hub's client certificate, if it has one. */
  readonly agent: HttpAgent;
  /**
   * Connections with the same trust but no client certificate, for requests
   * that carry their own bearer token: kube-apiserver tries x509 before
   * tokens, so over a client-cert connection the client's token would be
   * ignored and the request would run as the hub.
   */
  readonly passthroughAgent: HttpAgent;
  /** The hub's own `Authorization` value, used when the client sends none. */
  authorization(): Promise<string | undefined>;
  /** Closes every connection (shutdown). */
  destroy(): void;
}

export interface UpstreamSettings {
  server: readonly string[];
  upstreamKubeconfig?: string | undefined;
}

interface Agents {
  agent: HttpAgent;
  passthrough: HttpAgent;
}

function agentsFor(url: URL, tls: UpstreamTls): Agents {
  if (url.protocol === 'http:') {
    const agent = new nodeHttp.Agent({ keepAlive: true });
    return { agent, passthrough: agent };
  }
  const { cert, key, ...trust } = tls;
  const agent = new HttpsAgent({ keepAlive: true, ...trust, cert, key });
  const passthrough =
    cert === undefined && key === undefined ? agent : new HttpsAgent({ keepAlive: true, ...trust });
  return { agent, passthrough };
}

type ConnectCallback = (err: Error | null, stream: Duplex) => void;

/** Node's Agent takes an error alone (its types want a stream with it too). */
function failConnect(cb: ConnectCallback, err: unknown): void {
  (cb as (err: Error) => void)(noCredentials(err));
}

/** Node's Agent always passes the callback; the asynchronous connection needs it. */
function callbackOf(cb: ConnectCallback | undefined): ConnectCallback {
  if (cb === undefined)
    throw new Error('waiting for upstream credentials needs a connect callback');
  return cb;
}

/** Why a connection could not wait for credentials, as the proxy and the probe report it. */
function noCredentials(err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  return new Error(`no upstream credentials yet: ${message}`, { cause: err });
}

/**
 * The agents of an upstream whose credentials are still being resolved: each
 * new connection waits for them and connects with their TLS material, or
 * fails with why there are none (a read then comes from the cache). Replaced
 * by agentsFor() once the credentials exist.
 */
function waitingAgents(url: URL, creds: UpstreamCredentials): Agents {
  const tlsNow = (): Promise<UpstreamTls> =>
    creds.untilResolved?.() ?? Promise.resolve(creds.tls());
  if (url.protocol === 'http:') {
    class WaitingHttpAgent extends nodeHttp.Agent {
      override createConnection(options: ClientRequestArgs, callback?: ConnectCallback): undefined {
        const cb = callbackOf(callback);
        tlsNow().then(
          () => cb(null, netConnect(options as Parameters<typeof netConnect>[0])),
          (err: unknown) => failConnect(cb, err),
        );
        return undefined;
      }
    }
    const agent = new WaitingHttpAgent({ keepAlive: true });
    return { agent, passthrough: agent };
  }
  const waiting = (withClientCert: boolean) =>
    class WaitingHttpsAgent extends HttpsAgent {
      override createConnection(
        options: HttpsRequestOptions,
        callback?: ConnectCallback,
      ): undefined {
        const cb = callbackOf(callback);
        tlsNow().then(
          (tls) => {
            const { cert, key, ...trust } = tls;
            const client = withClientCert ? { cert, key } : {};
            cb(null, tlsConnect({ ...(options as ConnectionOptions), ...trust, ...client }));
          },
          (err: unknown) => failConnect(cb, err),
        );
        return undefined;
      }
    };
  const Agent = waiting(true);
  const Passthrough = waiting(false);
  return {
    agent: new Agent({ keepAlive: true }),
    passthrough: new Passthrough({ keepAlive: true }),
  };
}

export function createUpstream(server: string, creds: UpstreamCredentials): Upstream {
  const url = new URL(server);
  const pending = creds.untilResolved?.();
  // Only asked whether to wait; each connection waits on (and reports) its own.
  pending?.catch(() => {});
  let agents = pending === undefined ? agentsFor(url, creds.tls()) : waitingAgents(url, creds);
  const retired: Agents[] = [];
  // New connections use rotated material; open watches finish on the old ones.
  creds.onTlsChange((tls) => {
    retired.push(agents);
    agents = agentsFor(url, tls);
  });
  return {
    name: server,
    url,
    get agent() {
      return agents.agent;
    },
    get passthroughAgent() {
      return agents.passthrough;
    },
    authorization: () => creds.authorization(),
    destroy: () => {
      for (const a of [agents, ...retired.splice(0)]) {
        a.agent.destroy();
        a.passthrough.destroy();
      }
    },
  };
}

/**
 * `--server` URLs alone trust the system CAs and send no credentials of the
 * hub's own. `--upstream-kubeconfig` alone uses its current context's server.
 * Both: every `--server` (an HA control plane) with the kubeconfig's CA and
 * credentials.
 */
export async function buildUpstreams(
  settings: UpstreamSettings,
  onCredentialError: (err: Error) => void = () => {},
): Promise<Upstream[]> {
  if (settings.upstreamKubeconfig === undefined) {
    return settings.server.map((s) => createUpstream(s, anonymousCredentials(s)));
  }
  // Resolved in a child process while the hub already serves its cache.
  const creds = startKubeconfigCredentials(settings.upstreamKubeconfig, {
    onRefreshError: onCredentialError,
  });
  const servers = settings.server.length > 0 ? settings.server : [creds.server];
  return servers.map((s) => createUpstream(s, creds));
}

export function destroyUpstreams(upstreams: readonly Upstream[]): void {
  for (const u of upstreams) u.destroy();
}
