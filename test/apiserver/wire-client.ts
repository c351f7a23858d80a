import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * A bare HTTP(S) client for tests that look at the wire itself: status codes,
 * headers, raw bodies and watch streams line by line, with client
 * certificates or bearer tokens. Not a Kubernetes client on purpose.
 */

export interface WireCredentials {
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
}

export interface WireRequest {
  body?: unknown;
  /** Default application/json for object bodies. */
  contentType?: string;
  headers?: Record<string, string>;
}

export interface WireResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON (throws with the body in the message when it is not). */
  json<T = Record<string, unknown>>(): T;
}

export interface WatchEvent {
  type: string;
  object: Record<string, unknown> & { metadata?: Record<string, unknown> };
}

export class WireClient {
  readonly baseUrl: string;
  readonly #creds: WireCredentials;

  constructor(baseUrl: string, creds: WireCredentials = {}) {
    this.baseUrl = baseUrl;
    this.#creds = creds;
  }

  request(method: string, path: string, req: WireRequest = {}): Promise<WireResponse> {
    return new Promise((resolve, reject) => {
      const r = this.#open(method, path, req, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json<T>(): T {
              try {
                return JSON.parse(text) as T;
              } catch {
                throw new Error(`${method} ${path}: body is not JSON: ${text.slice(0, 300)}`);
              }
            },
          });
        });
      });
      r.on('error', reject);
    });
  }

  get(path: string, headers?: Record<string, string>): Promise<WireResponse> {
    return this.request('GET', path, headers === undefined ? {} : { headers });
  }

  post(path: string, body: unknown, contentType?: string): Promise<WireResponse> {
    return this.request('POST', path, {
      body,
      ...(contentType === undefined ? {} : { contentType }),
    });
  }

  put(path: string, body: unknown): Promise<WireResponse> {
    return this.request('PUT', path, { body });
  }

  patch(path: string, contentType: string, body: unknown): Promise<WireResponse> {
    return this.request('PATCH', path, { body, contentType });
  }

  delete(path: string, body?: unknown): Promise<WireResponse> {
    return this.request('DELETE', path, body === undefined ? {} : { body });
  }

  /** Opens a watch (the caller adds `watch=true` or uses a /watch/ path) and reads it line by line. */
  watch(path: string, headers?: Record<string, string>): Promise<WatchReader> {
    return new Promise((resolve, reject) => {
      const r = this.#open('GET', path, headers === undefined ? {} : { headers }, (res) => {
        resolve(new WatchReader(res));
      });
      r.on('error', reject);
    });
  }

  #open(
    method: string,
    path: string,
    req: WireRequest,
    onResponse: (res: IncomingMessage) => void,
  ) {
    const url = new URL(path, this.baseUrl);
    const headers: Record<string, string | number> = { Accept: 'application/json', ...req.headers };
    let payload: Buffer | undefined;
    if (req.body !== undefined) {
      payload = Buffer.isBuffer(req.body)
        ? req.body
        : Buffer.from(typeof req.body === 'string' ? req.body : JSON.stringify(req.body));
      headers['Content-Type'] = req.contentType ?? 'application/json';
      headers['Content-Length'] = payload.length;
    }
    if (this.#creds.token !== undefined) headers.Authorization = `Bearer ${this.#creds.token}`;
    const options = {
      method,
      headers,
      agent: false as const,
      ...(this.#creds.ca === undefined ? {} : { ca: this.#creds.ca }),
      ...(this.#creds.cert === undefined ? {} : { cert: this.#creds.cert }),
      ...(this.#creds.key === undefined ? {} : { key: this.#creds.key }),
    };
    const r =
      url.protocol === 'https:'
        ? httpsRequest(url, options, onResponse)
        : httpRequest(url, options, onResponse);
    r.end(payload);
    return r;
  }
}

/** The events of one watch response as they arrive, and how it ended. */
export class WatchReader {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly events: WatchEvent[] = [];
  /** 'end' when the server closed the stream cleanly, 'error' when the connection broke. */
  readonly ended: Promise<'end' | 'error'>;
  readonly #res: IncomingMessage;
  #read = 0;
  #wake: (() => void) | undefined;
  #done = false;

  constructor(res: IncomingMessage) {
    this.#res = res;
    this.status = res.statusCode ?? 0;
    this.headers = res.headers;
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      let nl = buffer.indexOf('\n');
      while (nl !== -1) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim() !== '') this.events.push(JSON.parse(line) as WatchEvent);
        nl = buffer.indexOf('\n');
      }
      this.#wake?.();
    });
    this.ended = new Promise((resolve) => {
      res.on('end', () => {
        this.#done = true;
        this.#wake?.();
        resolve('end');
      });
      res.on('aborted', () => {
        this.#done = true;
        this.#wake?.();
        resolve('error');
      });
      res.on('error', () => {
        this.#done = true;
        this.#wake?.();
        resolve('error');
      });
    });
  }

  /** The next event not yet returned; rejects if none arrives within timeoutMs or the stream ends. */
  async next(timeoutMs = 5000): Promise<WatchEvent> {
    const deadline = Date.now() + timeoutMs;
    while (this.#read >= this.events.length) {
      if (this.#done) throw new Error(`watch ended after ${this.events.length} events`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no watch event within ${timeoutMs} ms (saw ${this.events.length})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          this.#wake = undefined;
          resolve();
        };
      });
    }
    const event = this.events[this.#read++];
    if (event === undefined) throw new Error('watch reader out of step');
    return event;
  }

  /** Reads events until one satisfies `predicate`; returns it. */
  async until(predicate: (e: WatchEvent) => boolean, timeoutMs = 5000): Promise<WatchEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = await this.next(Math.max(1, deadline - Date.now()));
      if (predicate(e)) return e;
    }
  }

  close(): void {
    this.#res.destroy();
  }
}
