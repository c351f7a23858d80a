import type { ServerResponse } from 'node:http';
import type { Writable } from 'node:stream';

/**
 * Relays a JSON watch stream (one event per line) so that the client only
 * ever holds whole events: the bytes after the last newline wait for the
 * next chunk. When upstream breaks mid-event, the hub can then end the
 * client's watch cleanly, as a server-side watch timeout would, and the
 * client resumes from its last resourceVersion instead of seeing a read
 * error or half an event.
 */
export class WatchLineRelay {
  readonly #out: Writable;
  readonly #lines: (whole: Buffer) => Buffer;
  #tail: Buffer = Buffer.alloc(0);

  /** `lines`: what the client gets of whole event lines (the response filters' rewrite). */
  constructor(out: Writable, lines: (whole: Buffer) => Buffer = (whole) => whole) {
    this.#out = out;
    this.#lines = lines;
  }

  /** Returns false when the client is slow (apply back-pressure upstream). */
  write(chunk: Buffer): boolean {
    const nl = chunk.lastIndexOf(0x0a);
    if (nl === -1) {
      this.#tail = this.#tail.length === 0 ? chunk : Buffer.concat([this.#tail, chunk]);
      return true;
    }
    const whole =
      this.#tail.length === 0
        ? chunk.subarray(0, nl + 1)
        : Buffer.concat([this.#tail, chunk.subarray(0, nl + 1)]);
    this.#tail = chunk.subarray(nl + 1);
    const out = this.#lines(whole);
    return out.length === 0 ? true : this.#out.write(out);
  }

  /** Upstream finished the response: a last event without a newline is still whole. */
  end(): void {
    if (this.#tail.length > 0) this.#out.write(this.#lines(this.#tail));
    this.#tail = Buffer.alloc(0);
    this.#out.end();
  }

  /** Upstream broke: drop the partial event and end at an event boundary. */
  endAtBoundary(): void {
    this.#tail = Buffer.alloc(0);
    this.#out.end();
  }
}

/** The same interface for every other response: bytes go through untouched. */
export class DirectRelay {
  readonly #out: Writable;
  constructor(out: Writable) {
    this.#out = out;
  }
  write(chunk: Buffer): boolean {
    return this.#out.write(chunk);
  }
  end(): void {
    this.#out.end();
  }
}

/**
 * An answer the response filters rewrite whole (a GET's object, a LIST):
 * gathered, rewritten, then written with its head. `rewrite` returns
 * undefined when the client must not see the object at all (`dropped`
 * writes what it gets instead, a 404).
 */
export class RewrittenBodyRelay {
  readonly #out: ServerResponse;
  readonly #writeHead: () => void;
  readonly #rewrite: (body: Buffer) => Buffer | undefined;
  readonly #dropped: () => void;
  readonly #chunks: Buffer[] = [];

  constructor(
    out: ServerResponse,
    writeHead: () => void,
    rewrite: (body: Buffer) => Buffer | undefined,
    dropped: () => void,
  ) {
    this.#out = out;
    this.#writeHead = writeHead;
    this.#rewrite = rewrite;
    this.#dropped = dropped;
  }

  write(chunk: Buffer): boolean {
    this.#chunks.push(chunk);
    return true;
  }

  end(): void {
    const body = this.#rewrite(Buffer.concat(this.#chunks));
    this.#chunks.length = 0;
    if (body === undefined) {
      this.#dropped();
      return;
    }
    this.#out.setHeader('Content-Length', body.length);
    this.#writeHead();
    this.#out.end(body);
  }
}
