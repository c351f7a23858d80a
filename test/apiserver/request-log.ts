/**
 * An audit-ish log of every request the double received, for tests to
 * inspect ("did kubelet re-watch from the last resourceVersion?") and to
 * wait on instead of sleeping.
 */

export interface RequestRecord {
  readonly method: string;
  /** Path and query exactly as received. */
  readonly url: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly userAgent: string;
  /** Authenticated user, or undefined when authentication failed. */
  user: string | undefined;
  /** get, list, watch, create, ...; lower-case HTTP method for non-resource paths. */
  verb: string;
  /** HTTP status once the response head was written; undefined while pending. */
  status: number | undefined;
  readonly startedAt: number;
}

type Waiter = {
  predicate: (r: RequestRecord) => boolean;
  resolve: (r: RequestRecord) => void;
};

/** Records kept; the oldest tenth is dropped beyond this, so a long-running demo stays bounded. */
export const REQUEST_LOG_LIMIT = 100_000;

export class RequestLog {
  readonly #records: RequestRecord[] = [];
  readonly #waiters = new Set<Waiter>();

  /** Every request so far, oldest first. */
  get records(): readonly RequestRecord[] {
    return this.#records;
  }

  begin(init: Omit<RequestRecord, 'status' | 'user' | 'verb'>): RequestRecord {
    const record: RequestRecord = {
      ...init,
      user: undefined,
      verb: init.method.toLowerCase(),
      status: undefined,
    };
    this.#records.push(record);
    if (this.#records.length > REQUEST_LOG_LIMIT) this.#records.splice(0, REQUEST_LOG_LIMIT / 10);
    return record;
  }

  /** Sets the status (once) and wakes waiters whose predicate now matches. */
  complete(record: RequestRecord, status: number): void {
    if (record.status !== undefined) return;
    record.status = status;
    for (const waiter of this.#waiters) {
      if (waiter.predicate(record)) {
        this.#waiters.delete(waiter);
        waiter.resolve(record);
      }
    }
  }

  clear(): void {
    this.#records.length = 0;
  }

  filter(predicate: (r: RequestRecord) => boolean): RequestRecord[] {
    return this.#records.filter((r) => r.status !== undefined && predicate(r));
  }

  /**
   * Resolves with the first answered request matching `predicate`, looking
   * at past requests first; rejects after `timeoutMs`.
   */
  waitFor(predicate: (r: RequestRecord) => boolean, timeoutMs = 10_000): Promise<RequestRecord> {
    const existing = this.#records.find((r) => r.status !== undefined && predicate(r));
    if (existing !== undefined) return Promise.resolve(existing);
    return this.waitForNext(predicate, timeoutMs);
  }

  /** Like waitFor, but only for requests answered from now on. */
  waitForNext(
    predicate: (r: RequestRecord) => boolean,
    timeoutMs = 10_000,
  ): Promise<RequestRecord> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(
          new Error(
            `no matching request within ${timeoutMs} ms; saw ${this.#records.length} requests`,
          ),
        );
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }
}
