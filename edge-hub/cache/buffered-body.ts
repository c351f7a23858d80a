import { createBodyDecoder, type BodyDecoder } from './body-decoder.ts';
import type { ResponseRecorder } from './cache-manager.ts';

/** Bodies larger than this are not recorded (the client still gets them). */
export const MAX_RECORDED_BODY_BYTES = 512 * 1024 * 1024;

/**
 * Collects a whole upstream body (decoded) for recorders that can only act on
 * a complete document: a GET's object, a LIST. Never throws from write().
 */
export class BufferedBody {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private readonly decoder: BodyDecoder | undefined;
  /** Why the body cannot be used, once known. */
  failure: string | undefined;

  constructor(contentEncoding: string | undefined) {
    const decoder = createBodyDecoder(contentEncoding, (chunk) => this.take(chunk));
    if (decoder instanceof Error) this.failure = decoder.message;
    else this.decoder = decoder;
  }

  private take(chunk: Buffer): void {
    if (this.failure !== undefined) return;
    this.size += chunk.length;
    if (this.size > MAX_RECORDED_BODY_BYTES) {
      this.failure = `body exceeds ${MAX_RECORDED_BODY_BYTES} bytes`;
      this.chunks.length = 0;
      return;
    }
    this.chunks.push(chunk);
  }

  write(chunk: Buffer): void {
    if (this.failure === undefined) this.decoder?.write(chunk);
  }

  /** The complete body, or an Error saying why there is none. */
  async finish(): Promise<Buffer | Error> {
    if (this.failure === undefined && this.decoder !== undefined) {
      try {
        await this.decoder.end();
      } catch (err) {
        this.failure = `body could not be decoded: ${String(err)}`;
      }
    }
    if (this.failure !== undefined) return new Error(this.failure);
    const body = Buffer.concat(this.chunks, this.size);
    this.chunks.length = 0;
    return body;
  }

  abort(): void {
    this.failure ??= 'aborted';
    this.chunks.length = 0;
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
  contentEncoding: string | undefined,
  unusable: (why: string) => void,
  record: (body: Buffer) => Promise<void>,
): ResponseRecorder {
  const body = new BufferedBody(contentEncoding);
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
