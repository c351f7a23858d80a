import { connect, type Socket } from 'node:net';
import { z } from 'zod';

const MAX_LINE_BYTES = 1024 * 1024;
/**
 * How long a command may wait for its answer. A QEMU that accepts the
 * connection but stops answering (wedged in a vhost-user reply, say) must not
 * hang whoever asked for the VM's status.
 */
export const QMP_COMMAND_TIMEOUT_MS = 10_000;

const qmpLineSchema = z.union([
  z.object({ QMP: z.object({}).passthrough() }),
  z.object({ return: z.unknown(), id: z.number().optional() }),
  z.object({
    error: z.object({ class: z.string(), desc: z.string() }),
    id: z.number().optional(),
  }),
  z.object({ event: z.string(), data: z.unknown().optional() }),
]);

export interface QmpEvent {
  event: string;
  data: unknown;
}

/**
 * A QEMU Machine Protocol client over the VM's unix socket: newline-delimited
 * JSON, a greeting, `qmp_capabilities`, then commands matched to answers by id.
 */
export class QmpClient {
  readonly #socket: Socket;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly #eventHandlers = new Set<(e: QmpEvent) => void>();
  #buffer = '';
  #nextId = 1;
  #closedError: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.#onData(text));
    socket.on('error', (err) => this.#close(new Error(`QMP connection failed: ${err.message}`)));
    socket.on('close', () => this.#close(new Error('QMP connection closed (QEMU exited?)')));
  }

  /** Connects and negotiates capabilities; `isAlive` stops the retries when QEMU has died. */
  static async connect(
    path: string,
    timeoutMs: number,
    isAlive: () => boolean,
  ): Promise<QmpClient> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const client = new QmpClient(socket);
        try {
          // A QEMU that accepts the connection and never greets must not hold us past the deadline.
          await client.#greeting(Math.max(0, deadline - performance.now()));
          await client.execute('qmp_capabilities');
        } catch (err) {
          client.close(); // a failed handshake must not leave its socket open while we retry
          throw err;
        }
        return client;
      } catch (err) {
        if (!isAlive()) {
          throw new Error(`QEMU exited before its QMP socket ${path} answered`, { cause: err });
        }
        if (performance.now() > deadline) {
          throw new Error(`QMP socket ${path} did not answer within ${timeoutMs} ms`, {
            cause: err,
          });
        }
        // QEMU creates the socket a few ms after exec; there is no event to wait on.
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  }

  #greetingWaiter: { resolve(): void; reject(e: Error): void } | undefined;
  #greeted = false;

  #greeting(timeoutMs: number): Promise<void> {
    if (this.#greeted) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no QMP greeting within ${Math.round(timeoutMs)} ms`)),
        timeoutMs,
      );
      this.#greetingWaiter = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }

  onEvent(handler: (event: QmpEvent) => void): () => void {
    this.#eventHandlers.add(handler);
    return () => this.#eventHandlers.delete(handler);
  }

  execute(
    command: string,
    args?: Record<string, unknown>,
    timeoutMs = QMP_COMMAND_TIMEOUT_MS,
  ): Promise<unknown> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      // A late answer finds no pending entry and is dropped.
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`QMP ${command} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle = () => clearTimeout(timer);
      this.#pending.set(id, {
        resolve: (v) => (settle(), resolve(v)),
        reject: (e) => (settle(), reject(e)),
      });
      this.#socket.write(
        `${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`,
      );
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #onData(text: string): void {
    this.#buffer += text;
    if (this.#buffer.length > MAX_LINE_BYTES) {
      this.#close(new Error('QMP sent a line longer than 1 MiB'));
      this.#socket.destroy();
      return;
    }
    let newline: number;
    while ((newline = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, newline).trim();
      this.#buffer = this.#buffer.slice(newline + 1);
      if (line !== '') this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    let parsed: z.infer<typeof qmpLineSchema>;
    try {
      parsed = qmpLineSchema.parse(JSON.parse(line));
    } catch (err) {
      this.#close(new Error(`QMP sent an unexpected line: ${line.slice(0, 200)}`, { cause: err }));
      this.#socket.destroy();
      return;
    }
    if ('QMP' in parsed) {
      this.#greeted = true;
      this.#greetingWaiter?.resolve();
      return;
    }
    if ('event' in parsed) {
      for (const handler of this.#eventHandlers)
        handler({ event: parsed.event, data: parsed.data });
      return;
    }
    const pending = parsed.id === undefined ? undefined : this.#pending.get(parsed.id);
    if (!pending || parsed.id === undefined) return;
    this.#pending.delete(parsed.id);
    if ('error' in parsed)
      pending.reject(new Error(`QMP ${parsed.error.class}: ${parsed.error.desc}`));
    else pending.resolve(parsed.return);
  }

  #close(err: Error): void {
    if (this.#closedError) return;
    this.#closedError = err;
    this.#greetingWaiter?.reject(err);
    for (const pending of this.#pending.values()) pending.reject(err);
    this.#pending.clear();
  }
}
