import {
  badGateway,
  gatewayTimeout,
  internalError,
  serviceUnavailable,
  tooManyRequests,
  type KubeStatus,
} from '../../src/kube/status.ts';

/**
 * Fault controls for tests: latency, failed requests, broken bodies and cut
 * watches. Stopping and restarting the listener is FakeApiServer.stop() /
 * restart(). Rules are consumed in the order they were added.
 */

export interface FaultRequest {
  method: string;
  url: string;
  path: string;
  query: URLSearchParams;
  /** True for watch requests (`?watch=true` or the legacy `/watch/` prefix). */
  watch: boolean;
  userAgent: string;
}

export type FaultMatcher = (req: FaultRequest) => boolean;

export type FaultAction =
  | { kind: 'status'; status: KubeStatus }
  /** 200 with a body that is not JSON. */
  | { kind: 'invalid-json' }
  /** The real response, cut in the middle and the connection destroyed. */
  | { kind: 'truncate' };

interface Rule {
  action: FaultAction;
  remaining: number;
  match: FaultMatcher | undefined;
}

export interface CuttableWatch {
  readonly request: FaultRequest;
  cut(): void;
}

function statusFor(code: number): KubeStatus {
  const why = 'fault injected by the test';
  switch (code) {
    case 429:
      return tooManyRequests(`${why}: too many requests`);
    case 500:
      return internalError(why);
    case 502:
      return badGateway(why);
    case 503:
      return serviceUnavailable(`${why}: the server is currently unable to handle the request`);
    case 504:
      return gatewayTimeout(
        `${why}: the server was unable to return a response in the time allotted`,
      );
    default:
      return {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: why,
        code,
      };
  }
}

export class FaultInjector {
  /** Added before every request is handled (watches: before the stream starts). */
  latencyMs = 0;
  readonly #rules: Rule[] = [];
  readonly #watches = new Set<CuttableWatch>();

  /** Answers the next `times` matching requests with a Status of `code` (500, 503, 429, ...). */
  failWith(code: number, times = 1, match?: FaultMatcher): void {
    this.#add({ kind: 'status', status: statusFor(code) }, times, match);
  }

  /** Answers the next `times` matching requests with 200 and a body that is not JSON. */
  invalidJson(times = 1, match?: FaultMatcher): void {
    this.#add({ kind: 'invalid-json' }, times, match);
  }

  /** Cuts the next `times` matching responses mid-body (a list mid-items) and drops the connection. */
  truncateBody(times = 1, match?: FaultMatcher): void {
    this.#add({ kind: 'truncate' }, times, match);
  }

  /** Destroys the sockets of open watches (all, or matching) without a clean end; returns how many. */
  cutWatches(match?: FaultMatcher): number {
    let n = 0;
    for (const w of [...this.#watches]) {
      if (match === undefined || match(w.request)) {
        w.cut();
        this.#watches.delete(w);
        n++;
      }
    }
    return n;
  }

  /** Watches currently streaming. */
  get openWatches(): number {
    return this.#watches.size;
  }

  /** Removes every pending rule and the latency. */
  clear(): void {
    this.#rules.length = 0;
    this.latencyMs = 0;
  }

  /** Internal: the action for this request, consuming one use of the first matching rule. */
  take(req: FaultRequest): FaultAction | undefined {
    const index = this.#rules.findIndex((r) => r.match === undefined || r.match(req));
    const rule = this.#rules[index];
    if (rule === undefined) return undefined;
    rule.remaining--;
    if (rule.remaining <= 0) this.#rules.splice(index, 1);
    return rule.action;
  }

  /** Internal: the server registers each streaming watch here. */
  trackWatch(watch: CuttableWatch): () => void {
    this.#watches.add(watch);
    return () => this.#watches.delete(watch);
  }

  #add(action: FaultAction, times: number, match: FaultMatcher | undefined): void {
    if (!Number.isInteger(times) || times < 1)
      throw new Error(`times must be a positive integer, got ${times}`);
    this.#rules.push({ action, remaining: times, match });
  }
}
