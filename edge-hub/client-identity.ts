/**
 * Who is asking, on the plain loopback listener where clients carry no
 * certificate: the component named by the User-Agent. client-go builds it as
 * `<binary>/<version> (<os>/<arch>) kubernetes/<commit>`, so the first token
 * before '/' is the component (`kubelet`, `kube-proxy`, `coredns`).
 */
export const UNKNOWN_COMPONENT = 'unknown';

/** User-Agents seen lately -> component: a node's clients send a handful, on every request. */
const recentAgents = new Map<string, string>();
const MAX_RECENT_AGENTS = 64;
const MAX_REMEMBERED_LENGTH = 256;

export function componentFromUserAgent(userAgent: string | undefined): string {
  if (userAgent === undefined) return UNKNOWN_COMPONENT;
  let component = recentAgents.get(userAgent);
  if (component === undefined) {
    component = parseComponent(userAgent);
    if (userAgent.length > MAX_REMEMBERED_LENGTH) return component;
    if (recentAgents.size >= MAX_RECENT_AGENTS) recentAgents.clear();
    recentAgents.set(userAgent, component);
  }
  return component;
}

function parseComponent(userAgent: string): string {
  const first = userAgent.trim().split(/[\s/]/, 1)[0] ?? '';
  const component = first.toLowerCase();
  // The component becomes a cache partition key and a metrics label: only
  // accept what a binary name looks like, so a hostile UA cannot do either harm.
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(component)) return UNKNOWN_COMPONENT;
  return component;
}

/** True when the component's reads are recorded online and served from the cache offline. */
export function isCacheAgent(agents: readonly string[], component: string): boolean {
  return agents.includes('*') || agents.includes(component);
}
