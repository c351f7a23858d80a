import { createServer, connect, type Server, type Socket } from 'node:net';
import { rm } from 'node:fs/promises';
import type { Logger } from '../../src/log.ts';
import { codecFor, type Message } from './codec.ts';
import { FrameError, FrameReader, MessageType, encodeFrame } from './ttrpc-frame.ts';

/** gRPC status codes ttrpc responses carry. */
export const Code = {
  ok: 0,
  invalidArgument: 3,
  notFound: 5,
  alreadyExists: 6,
  failedPrecondition: 9,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
} as const;

/** An error answered to the caller as a ttrpc status. */
export class TtrpcError extends Error {
  readonly code: number;
  constructor(code: number, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TtrpcError';
    this.code = code;
  }
}

interface RequestMessage extends Message {
  service: string;
  method: string;
  payload: Buffer;
}
interface ResponseMessage extends Message {
  status?: { code: number; message: string } | null;
  payload: Buffer;
}
const requestCodec = codecFor<RequestMessage>('ttrpc.Request');
const responseCodec = codecFor<ResponseMessage>('ttrpc.Response');

export type MethodHandler = (payload: Buffer) => Promise<Buffer>;
/** service name → method name → handler. */
export type ServiceTable = ReadonlyMap<string, ReadonlyMap<string, MethodHandler>>;

/**
 * A ttrpc server on a unix socket: unary calls only (containerd's task API
 * has no streams). A peer sending a frame that breaks the protocol (too
 * large, unknown type, a stream id the client may not use, data for a
 * stream that is not open, a cut-off frame) is disconnected with the reason
 * logged; other connections and the server carry on.
 */
export class TtrpcServer {
  readonly #services: ServiceTable;
  readonly #log: Logger;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  constructor(services: ServiceTable, log: Logger) {
    this.#services = services;
    this.#log = log;
    this.#server = createServer((socket) => this.#serve(socket));
  }

  async listen(path: string): Promise<void> {
    await rm(path, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(path, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  /** Stops accepting, and ends open connections once their replies are written. */
  close(): Promise<void> {
    for (const socket of this.#sockets) socket.end();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  #serve(socket: Socket): void {
    this.#sockets.add(socket);
    const reader = new FrameReader();
    const active = new Set<number>();
    const drop = (reason: string): void => {
      this.#log.warn({ reason }, 'ttrpc connection closed: bad frame');
      socket.destroy();
    };
    socket.on('data', (chunk) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (err) {
        if (err instanceof FrameError) return drop(err.message);
        throw err;
      }
      for (const frame of frames) {
        if (frame.type !== MessageType.request)
          return drop(
            frame.type === MessageType.data
              ? `data frame for stream ${frame.streamId}, which is not open`
              : `a client sent a response frame (stream ${frame.streamId})`,
          );
        if (frame.streamId % 2 === 0)
          return drop(`request on even stream ${frame.streamId} (clients use odd ids)`);
        if (active.has(frame.streamId))
          return drop(`second request on open stream ${frame.streamId}`);
        let request: RequestMessage;
        try {
          request = requestCodec.decode(frame.payload);
        } catch (err) {
          return drop(`undecodable request on stream ${frame.streamId}: ${(err as Error).message}`);
        }
        active.add(frame.streamId);
        void this.#dispatch(request).then((response) => {
          active.delete(frame.streamId);
          if (socket.destroyed) return;
          socket.write(
            encodeFrame({
              streamId: frame.streamId,
              type: MessageType.response,
              flags: 0,
              payload: responseCodec.encode(response),
            }),
          );
        });
      }
    });
    socket.on('end', () => {
      if (reader.pendingBytes > 0)
        this.#log.warn(
          { reason: `connection ended inside a frame (${reader.pendingBytes} bytes)` },
          'ttrpc connection closed: truncated frame',
        );
      socket.end();
    });
    socket.on('error', (err) => this.#log.debug({ err }, 'ttrpc connection error'));
    socket.on('close', () => this.#sockets.delete(socket));
  }

  async #dispatch(request: RequestMessage): Promise<ResponseMessage> {
    const handler = this.#services.get(request.service)?.get(request.method);
    if (!handler) {
      return {
        status: {
          code: Code.unimplemented,
          message: `${request.service}/${request.method} is not a method of this shim`,
        },
        payload: Buffer.alloc(0),
      };
    }
    try {
      return { payload: await handler(request.payload) };
    } catch (err) {
      const code = err instanceof TtrpcError ? err.code : Code.internal;
      if (code === Code.internal)
        this.#log.error(
          { err, method: `${request.service}/${request.method}` },
          'shim call failed',
        );
      return { status: { code, message: (err as Error).message }, payload: Buffer.alloc(0) };
    }
  }
}

/** A ttrpc client: unary calls over one unix socket connection. */
export class TtrpcClient {
  readonly #socket: Socket;
  readonly #pending = new Map<number, { resolve(b: Buffer): void; reject(e: Error): void }>();
  #nextStream = 1;
  #closed: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    const reader = new FrameReader();
    socket.on('data', (chunk) => {
      try {
        for (const frame of reader.push(chunk)) {
          const call = this.#pending.get(frame.streamId);
          if (!call || frame.type !== MessageType.response) continue;
          this.#pending.delete(frame.streamId);
          const response = responseCodec.decode(frame.payload);
          if (response.status && response.status.code !== Code.ok)
            call.reject(new TtrpcError(response.status.code, response.status.message));
          else call.resolve(response.payload);
        }
      } catch (err) {
        socket.destroy(err as Error);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#closed = new Error('ttrpc connection closed');
      for (const call of this.#pending.values()) call.reject(this.#closed);
      this.#pending.clear();
    });
  }

  static connect(path: string): Promise<TtrpcClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(path);
      socket.once('connect', () => resolve(new TtrpcClient(socket)));
      socket.once('error', (err) =>
        reject(new Error(`cannot connect to ttrpc socket ${path}: ${err.message}`)),
      );
    });
  }

  call(service: string, method: string, payload: Buffer): Promise<Buffer> {
    if (this.#closed) return Promise.reject(this.#closed);
    const streamId = this.#nextStream;
    this.#nextStream += 2;
    return new Promise((resolve, reject) => {
      this.#pending.set(streamId, { resolve, reject });
      this.#socket.write(
        encodeFrame({
          streamId,
          type: MessageType.request,
          flags: 0,
          payload: requestCodec.encode({ service, method, payload, timeout_nano: 0, metadata: [] }),
        }),
      );
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}
