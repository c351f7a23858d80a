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
  #tail: Buffer = Buffer.alloc(0);

  constructor(out: Writable) {
    this.#out = out;
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
    return this.#out.write(whole);
  }

  /** Upstream finished the response: a last event without a newline is still whole. */
  end(): void {
    if (this.#tail.length > 0) this.#out.write(this.#tail);
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
