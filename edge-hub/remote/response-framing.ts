import type { IncomingHttpHeaders } from 'node:http';

/**
 * Reading kube-apiserver's answer to a forwarded read on a raw connection
 * (remote/socket-forwarder.ts): where its head ends, what it says, and where
 * its body ends (Content-Length, chunked, or none), so the bytes can be
 * relayed as they are while the connection is kept for the next request and
 * the body is handed, de-chunked, to the cache's recorder.
 *
 * Strict on purpose: an answer that does not frame cleanly is an upstream
 * fault (the client's connection is cut, nothing is recorded), never guessed at.
 */
export class FramingError extends Error {}

/** kube-apiserver's heads are a few hundred bytes; Go's own client stops at 1 MiB. */
export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;
/** A chunk-size or trailer line longer than this is not from a sane server. */
const MAX_LINE_BYTES = 4096;

const CRLF_CRLF = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [^\r\n]*)?$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const CHUNK_SIZE = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/;

export interface ResponseHead {
  statusCode: number;
  /** The status line as the client gets it (always HTTP/1.1). */
  statusLine: string;
  /** Header lines as received (hop-by-hop ones included). */
  lines: string[];
  /** Lower-cased names, as Node's IncomingMessage has them (for the recorder). */
  headers(): IncomingHttpHeaders;
  /** The upstream connection may carry the next request once this answer ends. */
  reusable: boolean;
  /** The body runs until upstream closes (no length, not chunked). */
  untilClose: boolean;
  /** Bytes of the head, its final empty line included. */
  length: number;
}

/** The head that starts `buf`, or undefined while it is incomplete. Throws FramingError. */
export function parseResponseHead(
  buf: Buffer,
): { head: ResponseHead; body: BodyFramer } | undefined {
  const at = buf.indexOf(CRLF_CRLF);
  if (at === -1) {
    if (buf.length > MAX_RESPONSE_HEAD_BYTES) {
      throw new FramingError(`a response head longer than ${MAX_RESPONSE_HEAD_BYTES} bytes`);
    }
    return undefined;
  }
  const lines = buf.toString('latin1', 0, at).split('\r\n');
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (status === null)
    throw new FramingError(`a malformed status line ${JSON.stringify(lines[0])}`);
  const statusCode = Number(status[2]);
  if (statusCode < 200) {
    // Nothing the fast lane forwards asks for one (no Expect, no upgrade).
    throw new FramingError(`an unexpected informational response (${statusCode})`);
  }
  const headerLines = lines.slice(1);
  let contentLength: number | undefined;
  let chunked = false;
  let transferEncoded = false;
  let keepAlive = status[1] === '1';
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name))
      throw new FramingError(`a malformed header line ${JSON.stringify(line)}`);
    const value = line.slice(colon + 1).trim();
    switch (name.toLowerCase()) {
      case 'content-length': {
        if (
          !/^\d{1,15}$/.test(value) ||
          (contentLength !== undefined && contentLength !== Number(value))
        ) {
          throw new FramingError(`an invalid Content-Length ${JSON.stringify(value)}`);
        }
        contentLength = Number(value);
        break;
      }
      case 'transfer-encoding':
        transferEncoded = true;
        chunked = value.toLowerCase().split(',').at(-1)?.trim() === 'chunked';
        break;
      case 'connection': {
        const options = value.toLowerCase();
        if (options.includes('close')) keepAlive = false;
        else if (options.includes('keep-alive')) keepAlive = true;
        break;
      }
    }
  }
  if (transferEncoded && contentLength !== undefined) {
    throw new FramingError('both Transfer-Encoding and Content-Length');
  }
  const bodyless = statusCode === 204 || statusCode === 304;
  const untilClose = !bodyless && !transferEncoded && contentLength === undefined;
  const framer = bodyless
    ? new BodyFramer({ kind: 'length', remaining: 0 })
    : chunked
      ? new BodyFramer({ kind: 'chunked' })
      : transferEncoded || untilClose
        ? new BodyFramer({ kind: 'until-close' })
        : new BodyFramer({ kind: 'length', remaining: contentLength ?? 0 });
  const head: ResponseHead = {
    statusCode,
    statusLine: `HTTP/1.1${(lines[0] ?? '').slice(8)}`,
    lines: headerLines,
    headers: () => headersOf(headerLines),
    reusable: keepAlive && !framer.untilClose,
    untilClose: framer.untilClose,
    length: at + 4,
  };
  return { head, body: framer };
}

function headersOf(lines: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (name === 'set-cookie') out[name] = [...(Array.isArray(prev) ? prev : [prev]), value];
    else out[name] = `${Array.isArray(prev) ? prev.join(', ') : prev}, ${value}`;
  }
  return out as IncomingHttpHeaders;
}

type Framing =
  | { kind: 'length'; remaining: number }
  | { kind: 'chunked' }
  /** No framing: the body is whatever comes until upstream closes. */
  | { kind: 'until-close' };

type ChunkState = 'size' | 'data' | 'data-end' | 'trailer';

/**
 * Follows a response body through the bytes that carry it: how many of each
 * read belong to this answer, the payload inside them (de-chunked), and
 * whether the answer is complete.
 */
export class BodyFramer {
  done: boolean;
  readonly untilClose: boolean;
  #framing: Framing;
  #state: ChunkState = 'size';
  #remaining = 0;
  #line = '';

  constructor(framing: Framing) {
    this.#framing = framing;
    this.untilClose = framing.kind === 'until-close';
    this.done = framing.kind === 'length' && framing.remaining === 0;
  }

  /**
   * Consumes the start of `bytes`; returns how many belong to this answer
   * (the rest, if any, came after its end). The payload goes to `payload`.
   */
  consume(bytes: Buffer, payload: (data: Buffer) => void): number {
    const f = this.#framing;
    if (this.done) return 0;
    if (f.kind === 'until-close') {
      payload(bytes);
      return bytes.length;
    }
    if (f.kind === 'length') {
      const n = Math.min(f.remaining, bytes.length);
      if (n > 0) payload(n === bytes.length ? bytes : bytes.subarray(0, n));
      f.remaining -= n;
      this.done = f.remaining === 0;
      return n;
    }
    let i = 0;
    while (i < bytes.length && !this.done) {
      if (this.#state === 'data') {
        const n = Math.min(this.#remaining, bytes.length - i);
        payload(bytes.subarray(i, i + n));
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = 'data-end';
        continue;
      }
      const lf = bytes.indexOf(0x0a, i);
      const end = lf === -1 ? bytes.length : lf;
      this.#line += bytes.toString('latin1', i, end);
      if (this.#line.length > MAX_LINE_BYTES) throw new FramingError('a chunk line too long');
      i = lf === -1 ? bytes.length : lf + 1;
      if (lf !== -1) this.#endOfLine();
    }
    return i;
  }

  #endOfLine(): void {
    const raw = this.#line;
    this.#line = '';
    if (!raw.endsWith('\r')) throw new FramingError('a chunk line not ended by CRLF');
    const line = raw.slice(0, -1);
    switch (this.#state) {
      case 'size': {
        const m = CHUNK_SIZE.exec(line);
        if (m === null) throw new FramingError(`a malformed chunk size ${JSON.stringify(line)}`);
        this.#remaining = Number.parseInt(m[1] ?? '', 16);
        this.#state = this.#remaining === 0 ? 'trailer' : 'data';
        return;
      }
      case 'data-end':
        if (line !== '') throw new FramingError('a chunk longer than its size');
        this.#state = 'size';
        return;
      case 'trailer':
        if (line === '') this.done = true;
        return;
      case 'data':
        return; // not reached: data is consumed by length
    }
  }
}
