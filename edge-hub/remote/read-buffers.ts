import type { OnReadOpts } from 'node:net';

/** What Node itself reads into per socket read. */
const READ_BUFFER_BYTES = 64 * 1024;
/** Free buffers kept for the next reads; more are left to the garbage collector. */
const MAX_FREE = 4;

/**
 * Bytes read from upstream into a reused buffer. The consumer calls `done()`
 * once (at once, or when the write that carries the bytes to the client has
 * completed); until then the buffer is not read into again.
 */
export type ReadConsumer = (chunk: Buffer, done: () => void) => void;

/**
 * Read buffers the fast lane's upstream connections share (Node's `onread`).
 * By default every socket read gets a fresh buffer: relaying a 46 KB list
 * thousands of times a second made V8 run a full mark-compact every ~100 ms
 * for the external memory alone, ~15 % of the hub's CPU. Relayed bytes are
 * written to the client and not kept, so the buffer they came in can take
 * the next read once that write is done.
 */
export class ReadBuffers {
  readonly #free: Buffer[] = [];

  /** `onread` options for a socket whose reads go to `consume()`'s current answer. */
  onread(consume: ReadConsumer): OnReadOpts {
    return {
      buffer: () => this.#free.pop() ?? Buffer.allocUnsafeSlow(READ_BUFFER_BYTES),
      callback: (n, buffer) => {
        const backing = buffer as Buffer;
        let given = false;
        consume(backing.subarray(0, n), () => {
          if (given) return;
          given = true;
          if (this.#free.length < MAX_FREE) this.#free.push(backing);
        });
        return true;
      },
    };
  }
}
