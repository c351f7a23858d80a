import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from '../../src/log.ts';
import type { HubRequest, ResponseRecorder } from '../hub-request.ts';

/** Makes the cache's recorder for an answer (undefined: not recorded). */
export type RecorderFactory = (
  statusCode: number,
  headers: IncomingHttpHeaders,
) => ResponseRecorder | undefined;

/**
 * The cache's recorder as the proxy uses it: a recorder that
 * throws is logged once and dropped, so recording can never break the
 * relay to the client.
 */
export class GuardedRecorder {
  #recorder: ResponseRecorder | undefined;
  readonly #log: Logger;
  readonly #hubReq: HubRequest;

  constructor(
    make: RecorderFactory | undefined,
    statusCode: number,
    headers: () => IncomingHttpHeaders,
    log: Logger,
    hubReq: HubRequest,
  ) {
    this.#log = log;
    this.#hubReq = hubReq;
    try {
      this.#recorder = make?.(statusCode, headers());
    } catch (err) {
      log.error({ err, path: hubReq.info.path }, 'cache recorder could not start; not recording');
    }
  }

  write(chunk: Buffer): void {
    this.#guard((r) => r.write(chunk));
  }

  abort(reason: string): void {
    this.#guard((r) => r.abort(reason));
  }

  /** The commit of a complete answer (undefined when nothing is recorded); never rejects. */
  end(): Promise<void> | undefined {
    const recorder = this.#recorder;
    if (recorder === undefined) return undefined;
    return Promise.resolve()
      .then(() => recorder.end())
      .catch((err: unknown) => {
        this.#log.error(
          { err, path: this.#hubReq.info.path, component: this.#hubReq.component },
          'cache could not commit a recorded response',
        );
      });
  }

  #guard(fn: (r: ResponseRecorder) => void): void {
    if (this.#recorder === undefined) return;
    try {
      fn(this.#recorder);
    } catch (err) {
      this.#log.error(
        { err, path: this.#hubReq.info.path },
        'cache recorder failed; not recording',
      );
      this.#recorder = undefined;
    }
  }
}
