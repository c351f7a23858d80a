/**
 * The one framing used on every host-guest transport (virtio-serial today,
 * vsock where the host has it): a 4-byte big-endian payload length, then the
 * payload (UTF-8 JSON). Both sides cap the payload size; the decoder never
 * buffers more than one frame's worth of bytes, so a peer that announces a
 * huge frame or never finishes one cannot make the reader grow without bound.
 */

export const FRAME_HEADER_BYTES = 4;
/** Default cap for one frame's payload: comfortably above any real message. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

export class FrameTooLargeError extends Error {
  readonly announcedBytes: number;
  readonly maxBytes: number;
  constructor(announcedBytes: number, maxBytes: number) {
    super(`frame of ${announcedBytes} bytes exceeds the limit of ${maxBytes} bytes`);
    this.name = 'FrameTooLargeError';
    this.announcedBytes = announcedBytes;
    this.maxBytes = maxBytes;
  }
}

export function encodeFrame(payload: Uint8Array, maxBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  if (payload.length > maxBytes) throw new FrameTooLargeError(payload.length, maxBytes);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Incremental decoder: feed it chunks as they arrive, get whole payloads back.
 * Throws FrameTooLargeError as soon as a header announces an oversized frame,
 * before any of its body is buffered.
 */
export class FrameDecoder {
  readonly maxBytes: number;
  #header = Buffer.alloc(FRAME_HEADER_BYTES);
  #headerFill = 0;
  #body: Buffer | undefined;
  #bodyFill = 0;

  constructor(maxBytes = DEFAULT_MAX_FRAME_BYTES) {
    this.maxBytes = maxBytes;
  }

  /** Bytes held waiting for the rest of a frame (never more than header + maxBytes). */
  get bufferedBytes(): number {
    return this.#headerFill + this.#bodyFill;
  }

  push(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#body === undefined) {
        const take = Math.min(FRAME_HEADER_BYTES - this.#headerFill, chunk.length - offset);
        chunk.copy(this.#header, this.#headerFill, offset, offset + take);
        this.#headerFill += take;
        offset += take;
        if (this.#headerFill < FRAME_HEADER_BYTES) break;
        const length = this.#header.readUInt32BE(0);
        if (length > this.maxBytes) throw new FrameTooLargeError(length, this.maxBytes);
        this.#body = Buffer.allocUnsafe(length);
        this.#bodyFill = 0;
      }
      const body = this.#body;
      const take = Math.min(body.length - this.#bodyFill, chunk.length - offset);
      chunk.copy(body, this.#bodyFill, offset, offset + take);
      this.#bodyFill += take;
      offset += take;
      if (this.#bodyFill === body.length) {
        frames.push(body);
        this.#body = undefined;
        this.#bodyFill = 0;
        this.#headerFill = 0;
      }
    }
    return frames;
  }
}
