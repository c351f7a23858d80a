import type { RequestInfo } from '../src/kube/request-info.ts';

/**
 * One client request as every layer sees it (server/ classifies it once;
 * remote/, cache/ and local/ read it): its own module so that none of those
 * imports another for the type.
 */
export interface HubRequest {
  /** client identity, e.g. 'kubelet' */
  component: string;
  /** parsed by parseRequestInfo */
  info: RequestInfo;
  /** the request's query string */
  query: URLSearchParams;
  /** request body for writes (already size-checked <= 3 MiB) */
  body?: Buffer;
  /** the client's Accept header */
  accept?: string;
}

/** Takes an upstream answer's body as it streams, for the cache. */
export interface ResponseRecorder {
  /** Never blocks or throws; buffers/parses internally. `chunk` is the recorder's to keep. */
  write(chunk: Buffer): void;
  /** upstream body finished: commit (list replace / last watch batch). Never rejects. */
  end(): Promise<void>;
  /** upstream cut or client gone: discard what is not a complete unit */
  abort(reason: string): void;
}
