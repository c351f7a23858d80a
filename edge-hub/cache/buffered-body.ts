import { createBodyDecoder, type BodyDecoder } from './body-decoder.ts';
import type { ResponseRecorder } from '../hub-request.ts';

/** Bodies larger than this are not recorded (the client still gets them). */
export const MAX_RECORDED_BODY_BYTES = 512 * 1024 * 1024;
/** A Content-Length is trusted this far for the first allocation; beyond, the buffer grows as bytes come. */
const MAX_SIZE_HINT_BYTES = 8 * 1024 * 1024;

/** A body's bytes, whitespace excepted: the apiserver ends a JSON answer with a newline. */
function isWhitespace(bytes: Buffer): boolean {
  for (const b of bytes) if (b !== 0x0a && b !== 0x0d && b !== 0x20 && b !== 0x09) return false;
  return true;
}

/**
 * Collects a whole upstream body (decoded) for recorders that can only act on
 * a complete document: a GET's object, a LIST. Never throws from write().
 *
 * Chunks are copied into the body as they come, never kept one by one.
 * Given the bytes the answer is expected to repeat (the stored object, the
 * last list), matching chunks are only compared: an unchanged answer, the
 * usual one, costs no copy at all, and finish() returns `expected` itself.
 */
export class BufferedBody {
  #bytes: Buffer | undefined;
  #size = 0;
  /** While set, every byte so far equals `expected`'s (then trailing whitespace). */
  #expected: Buffer | undefined;
  readonly #sizeHint: number;
  private readonly decoder: BodyDecoder | undefined;
  /** Why the body cannot be used, once known. */
  failure: string | undefined;

  constructor(
    contentEncoding: string | undefined,
    opts: { expected?: Buffer | undefined; contentLength?: number | undefined } = {},
  ) {
    const decoder = createBodyDecoder(contentEncoding, (chunk) => this.take(chunk));
    if (decoder instanceof Error) this.failure = decoder.message;
    else this.decoder = decoder;
    this.#expected = opts.expected;
    const identity = contentEncoding === undefined || contentEncoding === 'identity';
    this.#sizeHint = identity ? Math.min(opts.contentLength ?? 0, MAX_SIZE_HINT_BYTES) : 0;
  }

  private take(chunk: Buffer): void {
    if (this.failure !== undefined || chunk.length === 0) return;
    const expected = this.#expected;
    if (expected !== undefined) {
      const at = this.#size;
      const overlap = Math.max(0, Math.min(chunk.length, expected.length - at));
      const same =
        (overlap === 0 || expected.compare(chunk, 0, overlap, at, at + overlap) === 0) &&
        isWhitespace(chunk.subarray(overlap));
      if (same) {
        this.#size += chunk.length;
        return;
      }
      // The first difference: what matched so far is expected's (past its
      // end only whitespace went by, whose exact bytes no JSON reader sees).
      this.#expected = undefined;
      this.#size = 0;
      this.#append(expected.subarray(0, Math.min(at, expected.length)));
      if (at > expected.length) this.#append(Buffer.alloc(at - expected.length, 0x0a));
    }
    this.#append(chunk);
  }

  #append(chunk: Buffer): void {
    const size = this.#size + chunk.length;
    if (size > MAX_RECORDED_BODY_BYTES) {
      this.failure = `body exceeds ${MAX_RECORDED_BODY_BYTES} bytes`;
      this.#bytes = undefined;
      return;
    }
    let bytes = this.#bytes;
    if (bytes === undefined || bytes.length < size) {
      const room = Math.max(size, this.#sizeHint, 2 * (bytes?.length ?? 0));
      const grown = Buffer.allocUnsafe(Math.min(room, MAX_RECORDED_BODY_BYTES));
      bytes?.copy(grown, 0, 0, this.#size);
      this.#bytes = bytes = grown;
    }
    chunk.copy(bytes, this.#size);
    this.#size = size;
  }

  write(chunk: Buffer): void {
    if (this.failure === undefined) this.decoder?.write(chunk);
  }

  /** The complete body (`expected` itself when it repeated it), or an Error saying why there is none. */
  async finish(): Promise<Buffer | Error> {
    if (this.failure === undefined && this.decoder !== undefined) {
      try {
        await this.decoder.end();
      } catch (err) {
        this.failure = `body could not be decoded: ${String(err)}`;
      }
    }
    if (this.failure !== undefined) return new Error(this.failure);
    const expected = this.#expected;
    if (expected !== undefined) {
      // Shorter than expected is another body (complete: a cut one is aborted).
      return this.#size >= expected.length
        ? expected
        : Buffer.from(expected.subarray(0, this.#size));
    }
    const body = this.#bytes?.subarray(0, this.#size) ?? Buffer.alloc(0);
    this.#bytes = undefined;
    return body;
  }

  /**
   * The bytes so far, for a reader that goes on with the rest of the body
   * itself; only for a body without Content-Encoding (nothing waits in a
   * decoder). The body is done with after this.
   */
  takeSoFar(): Buffer | Error {
    if (this.failure !== undefined) return new Error(this.failure);
    const expected = this.#expected;
    // Past expected's end only whitespace went by, which no JSON reader sees.
    const bytes =
      expected !== undefined
        ? expected.subarray(0, Math.min(this.#size, expected.length))
        : (this.#bytes?.subarray(0, this.#size) ?? Buffer.alloc(0));
    this.failure = 'taken';
    this.#bytes = undefined;
    this.#expected = undefined;
    return bytes;
  }

  abort(): void {
    this.failure ??= 'aborted';
    this.#bytes = undefined;
    this.decoder?.abort();
  }
}

export function parseJson(body: Buffer): unknown {
  return JSON.parse(body.toString('utf8'));
}

/**
 * A recorder for answers usable only whole (an object, a list, a token):
 * `record` gets the decoded body once upstream has finished it; a body cut
 * short, aborted or undecodable goes to `unusable` instead.
 */
export function wholeBodyRecorder(
  body: BufferedBody,
  unusable: (why: string) => void,
  record: (body: Buffer) => Promise<void>,
): ResponseRecorder {
  return {
    write: (chunk) => body.write(chunk),
    abort: () => body.abort(),
    async end() {
      const bytes = await body.finish();
      if (bytes instanceof Error) unusable(bytes.message);
      else await record(bytes);
    },
  };
}
