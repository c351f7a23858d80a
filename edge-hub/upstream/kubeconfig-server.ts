import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

function recordOf(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

function named(list: unknown, name: unknown): Record<string, unknown> | undefined {
  if (!Array.isArray(list)) return undefined;
  return list.map(recordOf).find((e) => e !== undefined && e.name === name);
}

/**
 * The current context's cluster server, read in the hub itself (yaml is loaded
 * anyway for --config) so the hub knows where upstream is and can serve its
 * cache while the resolver child works out the credentials. Fails, at start,
 * with the messages the resolver would give: the file and what is missing.
 */
export function readKubeconfigServer(path: string): string {
  let doc: Record<string, unknown> | undefined;
  try {
    doc = recordOf(parseYaml(readFileSync(path, 'utf8')));
  } catch (err) {
    throw new Error(`reading upstream kubeconfig ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const currentContext = doc?.['current-context'];
  const context = recordOf(named(doc?.contexts, currentContext)?.context);
  const cluster = named(doc?.clusters, context?.cluster);
  if (cluster === undefined) {
    throw new Error(
      `upstream kubeconfig ${path}: the current context ${JSON.stringify(typeof currentContext === 'string' ? currentContext : '')} names no cluster`,
    );
  }
  const server = recordOf(cluster.cluster)?.server;
  if (typeof server !== 'string' || !URL.canParse(server)) {
    throw new Error(
      `upstream kubeconfig ${path}: cluster ${JSON.stringify(cluster.name)} has no valid server URL`,
    );
  }
  return server;
}
