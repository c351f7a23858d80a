import type { IncomingMessage } from 'node:http';
import {
  parseRequestInfo,
  RequestInfoError,
  requestInfoErrorStatus,
  type RequestInfo,
} from '../../src/kube/request-info.ts';
import type { KubeStatus } from '../../src/kube/status.ts';
import type { HubRequest } from '../hub-request.ts';
import { componentFromUserAgent, isCacheAgent } from '../client-identity.ts';

/** A request as the rest of the hub sees it: who asks, for what, and whether it may be cached. */
export interface ClassifiedRequest {
  hubReq: HubRequest;
  /** The component is in --cache-agents: its reads are recorded and it is served offline. */
  cacheAgent: boolean;
}

/** What classification reads of a request (an IncomingMessage, or a test's plain object). */
export interface RequestLine {
  method?: string | undefined;
  url?: string | undefined;
  headers: Pick<IncomingMessage['headers'], 'user-agent' | 'accept'>;
}

/**
 * Attaches the client's identity and the parsed request once; everything
 * after reads them from here. A path the apiserver would reject gets its Status (400).
 */
export function classifyRequest(
  req: RequestLine,
  body: Buffer | undefined,
  cacheAgents: readonly string[],
): ClassifiedRequest | KubeStatus {
  const method = req.method ?? 'GET';
  const url = req.url ?? '/';
  const info = parseRequestInfo(method, url);
  if (info instanceof RequestInfoError) return requestInfoErrorStatus(info);
  const component = componentFromUserAgent(req.headers['user-agent']);
  const hubReq: HubRequest = new ClassifiedHubRequest(component, info, url);
  if (body !== undefined) hubReq.body = body;
  if (req.headers.accept !== undefined) hubReq.accept = req.headers.accept;
  return { hubReq, cacheAgent: isCacheAgent(cacheAgents, component) };
}

/** A HubRequest whose query is parsed only when something reads it (a proxied GET never does). */
class ClassifiedHubRequest implements HubRequest {
  readonly component: string;
  readonly info: RequestInfo;
  readonly #url: string;
  #query: URLSearchParams | undefined;
  body?: Buffer;
  accept?: string;

  constructor(component: string, info: RequestInfo, url: string) {
    this.component = component;
    this.info = info;
    this.#url = url;
  }

  get query(): URLSearchParams {
    if (this.#query === undefined) {
      const q = this.#url.indexOf('?');
      this.#query = new URLSearchParams(q === -1 ? '' : this.#url.slice(q + 1));
    }
    return this.#query;
  }
}
