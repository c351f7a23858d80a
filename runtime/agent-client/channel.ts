import type { Duplex } from 'node:stream';
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encodeFrame } from '../protocol/framing.ts';
import {
  PROTOCOL_VERSION,
  guestMessageSchema,
  responseResultSchemas,
  type AgentReady,
  type GuestMessage,
  type HostRequestBody,
  type HostRequestOp,
  type ResponseResult,
} from '../protocol/messages.ts';
import { TokenBucket } from './rate-limit.ts';

export interface AgentChannelOptions {
  /** Largest frame accepted from the guest. */
  maxFrameBytes?: number;
  /** Sustained messages a second the guest may send, and the burst above it. */
  maxMessagesPerSecond?: number;
  messageBurst?: number;
  /**
   * Sustained bytes a second (frames as received, headers included) and the
   * burst above it: few large frames cost the host as much as many small ones.
   */
  maxBytesPerSecond?: number;
  byteBurst?: number;
  /** How long a request may wait for its answer before the sandbox is considered broken. */
  requestTimeoutMs?: number;
  now?: () => number;
}

/** Why the channel to a guest ended: the guest misbehaved, went away, or the host closed it. */
export class AgentChannelError extends Error {
  readonly reason: 'oversized' | 'invalid' | 'rate' | 'closed' | 'timeout' | 'protocol';
  constructor(reason: AgentChannelError['reason'], message: string) {
    super(message);
    this.name = 'AgentChannelError';
    this.reason = reason;
  }
}

/** Guest-initiated messages other than responses: lifecycle events, output, logs. */
export type AgentEvent = Exclude<GuestMessage, { kind: 'response' } | { kind: 'error' }>;

interface Pending {
  op: HostRequestOp;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Host end of the agent connection. The guest is untrusted: every frame is
 * size-capped before it is buffered, parsed as JSON, validated against the
 * shared schemas, and counted against a rate limit. The first violation ends
 * the channel (and so the sandbox) with an AgentChannelError; nothing the
 * guest sends can throw into the host process or grow memory beyond one frame.
 */
export class AgentChannel {
  readonly #socket: Duplex;
  readonly #decoder: FrameDecoder;
  readonly #bucket: TokenBucket;
  readonly #bytes: TokenBucket;
  readonly #requestTimeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  readonly #eventHandlers = new Set<(event: AgentEvent) => void>();
  readonly #closeHandlers = new Set<(err: AgentChannelError) => void>();
  #nextId = 1;
  #failure: AgentChannelError | undefined;
  #ready: AgentReady | undefined;
  readonly #readyWaiters = new Set<{
    resolve(r: AgentReady): void;
    reject(e: Error): void;
  }>();

  constructor(socket: Duplex, options: AgentChannelOptions = {}) {
    this.#socket = socket;
    this.#decoder = new FrameDecoder(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
    this.#bucket = new TokenBucket(
      options.maxMessagesPerSecond ?? 5000,
      options.messageBurst ?? 10_000,
      options.now,
    );
    this.#bytes = new TokenBucket(
      options.maxBytesPerSecond ?? 64 * 1024 * 1024,
      options.byteBurst ?? 64 * 1024 * 1024,
      options.now,
    );
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err: Error) =>
      this.#fail(new AgentChannelError('closed', `agent connection failed: ${err.message}`)),
    );
    socket.on('close', () =>
      this.#fail(new AgentChannelError('closed', 'agent connection closed by the guest')),
    );
  }

  get failure(): AgentChannelError | undefined {
    return this.#failure;
  }

  onEvent(handler: (event: AgentEvent) => void): () => void {
    this.#eventHandlers.add(handler);
    return () => this.#eventHandlers.delete(handler);
  }

  onClose(handler: (err: AgentChannelError) => void): () => void {
    if (this.#failure) {
      const failure = this.#failure;
      queueMicrotask(() => handler(failure));
    }
    this.#closeHandlers.add(handler);
    return () => this.#closeHandlers.delete(handler);
  }

  /** Resolves with the agent's hello; rejects if the channel ends or the timeout passes first. */
  waitReady(timeoutMs: number): Promise<AgentReady> {
    if (this.#ready) return Promise.resolve(this.#ready);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (r: AgentReady) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.#readyWaiters.delete(waiter);
        reject(new AgentChannelError('timeout', `guest agent not ready after ${timeoutMs} ms`));
      }, timeoutMs);
      this.#readyWaiters.add(waiter);
    });
  }

  /**
   * Sends a request; its answer must come within the channel's request timeout
   * unless `timeout: false` (a request the guest answers when a process is
   * ready, such as stdin a process reads at its own pace).
   */
  request<Op extends HostRequestOp>(
    body: Extract<HostRequestBody, { op: Op }>,
    options: { timeout?: boolean } = {},
  ): Promise<ResponseResult<Op>> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const frame = encodeFrame(
      Buffer.from(JSON.stringify({ ...body, v: PROTOCOL_VERSION, kind: 'request', id })),
    );
    return new Promise<ResponseResult<Op>>((resolve, reject) => {
      const timer =
        options.timeout === false
          ? undefined
          : setTimeout(() => {
              this.#pending.delete(id);
              reject(
                new AgentChannelError(
                  'timeout',
                  `guest agent did not answer ${body.op} within ${this.#requestTimeoutMs} ms`,
                ),
              );
            }, this.#requestTimeoutMs);
      this.#pending.set(id, {
        op: body.op,
        resolve: (v) => resolve(v as ResponseResult<Op>),
        reject,
        timer,
      });
      this.#socket.write(frame);
    });
  }

  /** Stop reading from the guest (backpressure towards a slow consumer of its output). */
  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  close(): void {
    this.#fail(new AgentChannelError('closed', 'agent connection closed by the host'));
  }

  #onData(chunk: Buffer): void {
    if (this.#failure) return;
    // Counted as it arrives, before it is buffered or parsed.
    if (!this.#bytes.take(chunk.length)) {
      this.#fail(
        new AgentChannelError(
          'rate',
          `guest exceeded ${this.#bytes.ratePerSecond} bytes/s (burst ${this.#bytes.burst})`,
        ),
      );
      return;
    }
    let frames: Buffer[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (err) {
      this.#fail(
        new AgentChannelError(
          'oversized',
          `guest sent an oversized message: ${(err as Error).message}`,
        ),
      );
      return;
    }
    for (const frame of frames) {
      if (this.#failure) return;
      if (!this.#bucket.take()) {
        this.#fail(
          new AgentChannelError(
            'rate',
            `guest exceeded ${this.#bucket.ratePerSecond} messages/s (burst ${this.#bucket.burst})`,
          ),
        );
        return;
      }
      this.#onFrame(frame);
    }
  }

  #onFrame(frame: Buffer): void {
    let json: unknown;
    try {
      json = JSON.parse(frame.toString('utf8'));
    } catch {
      this.#fail(new AgentChannelError('invalid', 'guest sent a message that is not JSON'));
      return;
    }
    const parsed = guestMessageSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      this.#fail(
        new AgentChannelError(
          'invalid',
          `guest sent an invalid message: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'schema mismatch'}`,
        ),
      );
      return;
    }
    const message = parsed.data;
    switch (message.kind) {
      case 'response':
      case 'error': {
        const pending = this.#pending.get(message.id);
        if (!pending) {
          this.#fail(
            new AgentChannelError('protocol', `guest answered request ${message.id}, never asked`),
          );
          return;
        }
        this.#pending.delete(message.id);
        clearTimeout(pending.timer);
        if (message.kind === 'error') {
          pending.reject(new Error(`guest agent refused ${pending.op}: ${message.message}`));
          return;
        }
        const result = responseResultSchemas[pending.op].safeParse(message.result);
        if (!result.success) {
          const err = new AgentChannelError(
            'invalid',
            `guest sent an invalid ${pending.op} result: ${result.error.issues[0]?.message ?? 'schema mismatch'}`,
          );
          pending.reject(err);
          this.#fail(err);
          return;
        }
        pending.resolve(result.data);
        return;
      }
      case 'ready':
        if (this.#ready) {
          this.#fail(new AgentChannelError('protocol', 'guest agent announced itself twice'));
          return;
        }
        this.#ready = message;
        for (const waiter of this.#readyWaiters) waiter.resolve(message);
        this.#readyWaiters.clear();
        this.#emit(message);
        return;
      default:
        this.#emit(message);
    }
  }

  #emit(event: AgentEvent): void {
    for (const handler of this.#eventHandlers) handler(event);
  }

  #fail(err: AgentChannelError): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#socket.destroy();
    for (const [, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(err);
    }
    this.#pending.clear();
    for (const waiter of this.#readyWaiters) waiter.reject(err);
    this.#readyWaiters.clear();
    for (const handler of this.#closeHandlers) handler(err);
  }
}
