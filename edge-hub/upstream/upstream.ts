import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import {
  anonymousCredentials,
  loadKubeconfigCredentials,
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
    const agent = new HttpAgent({ keepAlive: true });
    return { agent, passthrough: agent };
  }
  const { cert, key, ...trust } = tls;
  const agent = new HttpsAgent({ keepAlive: true, ...trust, cert, key });
  const passthrough =
    cert === undefined && key === undefined ? agent : new HttpsAgent({ keepAlive: true, ...trust });
  return { agent, passthrough };
}

export function createUpstream(server: string, creds: UpstreamCredentials): Upstream {
  const url = new URL(server);
  let agents = agentsFor(url, creds.tls());
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
  const creds = await loadKubeconfigCredentials(settings.upstreamKubeconfig, {
    onRefreshError: onCredentialError,
  });
  const servers = settings.server.length > 0 ? settings.server : [creds.server];
  return servers.map((s) => createUpstream(s, creds));
}

export function destroyUpstreams(upstreams: readonly Upstream[]): void {
  for (const u of upstreams) u.destroy();
}
