/**
 * containerd/ttrpc framing: a 10-byte header (u32 BE payload length, u32 BE
 * stream id, u8 message type, u8 flags) and the payload. Client streams are
 * odd. A peer that sends a frame this reader cannot accept is not talked to
 * again: the caller closes the connection with the FrameError's reason.
 */
export const FRAME_HEADER_BYTES = 10;
/** ttrpc's default message size limit. */
export const MAX_FRAME_PAYLOAD_BYTES = 4 << 20;

export const MessageType = { request: 1, response: 2, data: 3 } as const;
export type MessageTypeName = keyof typeof MessageType;

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Buffer;
}

export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

export function encodeFrame(frame: Frame): Buffer {
  if (frame.payload.length > MAX_FRAME_PAYLOAD_BYTES) {
    throw new FrameError(
      `ttrpc message of ${frame.payload.length} bytes exceeds the ${MAX_FRAME_PAYLOAD_BYTES}-byte limit`,
    );
  }
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32BE(frame.payload.length, 0);
  header.writeUInt32BE(frame.streamId, 4);
  header.writeUInt8(frame.type, 8);
  header.writeUInt8(frame.flags, 9);
  return Buffer.concat([header, frame.payload]);
}

/** Cuts a byte stream into frames; throws a FrameError on a header it must not trust. */
export class FrameReader {
  #buffered: Buffer[] = [];
  #length = 0;

  /** Feeds bytes in and returns every frame now complete. */
  push(chunk: Buffer): Frame[] {
    this.#buffered.push(chunk);
    this.#length += chunk.length;
    const frames: Frame[] = [];
    while (this.#length >= FRAME_HEADER_BYTES) {
      const data = this.#flatten();
      const size = data.readUInt32BE(0);
      if (size > MAX_FRAME_PAYLOAD_BYTES) {
        throw new FrameError(
          `frame of ${size} bytes announced, over the ${MAX_FRAME_PAYLOAD_BYTES}-byte limit`,
        );
      }
      const type = data.readUInt8(8);
      if (
        type !== MessageType.request &&
        type !== MessageType.response &&
        type !== MessageType.data
      )
        throw new FrameError(`unknown ttrpc message type ${type}`);
      if (this.#length < FRAME_HEADER_BYTES + size) break;
      frames.push({
        streamId: data.readUInt32BE(4),
        type,
        flags: data.readUInt8(9),
        payload: Buffer.from(data.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + size)),
      });
      const rest = data.subarray(FRAME_HEADER_BYTES + size);
      this.#buffered = rest.length > 0 ? [rest] : [];
      this.#length = rest.length;
    }
    return frames;
  }

  /** Bytes of a frame begun and not finished: non-zero when the peer hangs up mid-frame. */
  get pendingBytes(): number {
    return this.#length;
  }

  #flatten(): Buffer {
    if (this.#buffered.length > 1) this.#buffered = [Buffer.concat(this.#buffered)];
    return this.#buffered[0]!;
  }
}
