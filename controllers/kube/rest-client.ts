import {
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  RequestContext,
  type KubeConfig,
} from '@kubernetes/client-node';
import { z } from 'zod';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export const CONTENT_JSON = 'application/json';
export const CONTENT_MERGE_PATCH = 'application/merge-patch+json';
export const CONTENT_STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string>;
}

/** The few calls the ECM makes, raw JSON in and out (it validates with its own schemas). */
export interface RestClient {
  request(method: Method, path: string, options?: RequestOptions): Promise<unknown>;
}

const StatusSchema = z.object({
  kind: z.literal('Status'),
  message: z.string().optional(),
  reason: z.string().optional(),
  code: z.number().optional(),
});

/** The API refused a request: HTTP status, the Status reason, and which call it was. */
export class ApiError extends Error {
  readonly status: number;
  readonly reason: string;
  constructor(method: Method, path: string, status: number, reason: string, message: string) {
    super(`${method} ${path}: ${status} ${reason}: ${message}`);
    this.name = 'ApiError';
    this.status = status;
    this.reason = reason;
  }
}

/**
 * A RestClient over a KubeConfig, using client-node's own HTTP stack and
 * authentication (certificates, tokens, exec plugins), without its typed
 * models: objects stay plain JSON (timestamps as strings), as the watch
 * delivers them.
 */
export class KubeConfigRestClient implements RestClient {
  private readonly kubeConfig: KubeConfig;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  private readonly http = new IsomorphicFetchHttpLibrary();
  /** client-node builds a new connection pool per request; keeping the first reuses connections. */
  private dispatcher: ReturnType<RequestContext['getDispatcher']>;

  constructor(kubeConfig: KubeConfig, options: { timeoutMs?: number; userAgent?: string } = {}) {
    this.kubeConfig = kubeConfig;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? 'edgebox-ecm';
  }

  async request(method: Method, path: string, options: RequestOptions = {}): Promise<unknown> {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (cluster === null)
      throw new Error(`${method} ${path}: the kubeconfig has no current cluster`);
    const url = new URL(cluster.server.replace(/\/$/, '') + path);
    for (const [k, v] of Object.entries(options.query ?? {})) url.searchParams.set(k, v);
    const ctx = new RequestContext(url.toString(), HttpMethod[method]);
    ctx.setHeaderParam('Accept', CONTENT_JSON);
    ctx.setHeaderParam('User-Agent', this.userAgent);
    if (options.body !== undefined) {
      ctx.setHeaderParam('Content-Type', options.contentType ?? CONTENT_JSON);
      ctx.setBody(JSON.stringify(options.body));
    }
    ctx.setSignal(AbortSignal.timeout(this.timeoutMs));
    await this.kubeConfig.applySecurityAuthentication(ctx);
    this.dispatcher ??= ctx.getDispatcher();
    if (this.dispatcher !== undefined) ctx.setDispatcher(this.dispatcher);
    let response;
    try {
      response = await this.http.send(ctx).toPromise();
    } catch (err) {
      throw new Error(`${method} ${path}: ${(err as Error).message}`, { cause: err });
    }
    const text = await response.body.text();
    if (response.httpStatusCode >= 400) {
      let reason = 'Unknown';
      let message = text.slice(0, 500);
      try {
        const status = StatusSchema.safeParse(JSON.parse(text));
        if (status.success) {
          reason = status.data.reason ?? reason;
          message = status.data.message ?? message;
        }
      } catch {
        // not JSON: keep the text
      }
      throw new ApiError(method, path, response.httpStatusCode, reason, message);
    }
    if (text === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new Error(`${method} ${path}: response is not JSON: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }
}
