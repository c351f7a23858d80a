import type { IncomingMessage } from 'node:http';
import {
  parseRequestInfo,
  RequestInfoError,
  requestInfoErrorStatus,
} from '../../src/kube/request-info.ts';
import type { KubeStatus } from '../../src/kube/status.ts';
import type { HubRequest } from '../cache/cache-manager.ts';
import { componentFromUserAgent, isCacheAgent } from '../client-identity.ts';

/** A request as the rest of the hub sees it: who asks, for what, and whether it may be cached. */
export interface ClassifiedRequest {
  hubReq: HubRequest;
  /** The component is in --cache-agents: its reads are recorded and it is served offline. */
  cacheAgent: boolean;
}

/**
 * Attaches the client's identity and the parsed request once; everything
 * after reads them from here. A path the apiserver would reject gets its Status (400).
 */
export function classifyRequest(
  req: IncomingMessage,
  body: Buffer | undefined,
  cacheAgents: readonly string[],
): ClassifiedRequest | KubeStatus {
  const method = req.method ?? 'GET';
  const url = req.url ?? '/';
  const info = parseRequestInfo(method, url);
  if (info instanceof RequestInfoError) return requestInfoErrorStatus(info);
  const q = url.indexOf('?');
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  const component = componentFromUserAgent(req.headers['user-agent']);
  const hubReq: HubRequest = { component, info, query };
  if (body !== undefined) hubReq.body = body;
  if (req.headers.accept !== undefined) hubReq.accept = req.headers.accept;
  return { hubReq, cacheAgent: isCacheAgent(cacheAgents, component) };
}
