import { constants, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { Socket } from 'node:net';

/**
 * One process's stdout and stderr: the FIFOs (or files) containerd named in
 * Create/Exec; containerd reads them and writes the CRI log file. Writes are
 * kept in order; a reader that went away (EPIPE) ends that stream only.
 */
export class ProcessOutput {
  readonly #streams: Partial<Record<'stdout' | 'stderr', FileHandle>>;
  #pending: Promise<void> = Promise.resolve();

  private constructor(streams: Partial<Record<'stdout' | 'stderr', FileHandle>>) {
    this.#streams = streams;
  }

  static async open(paths: { stdout: string; stderr: string }): Promise<ProcessOutput> {
    const streams: Partial<Record<'stdout' | 'stderr', FileHandle>> = {};
    for (const stream of ['stdout', 'stderr'] as const) {
      const path = paths[stream];
      if (!path) continue;
      // A file:// URI (ctr --log-uri) is a log file of ours to append to; anything else is a
      // FIFO whose reading end containerd opened already, so this open does not block for long.
      streams[stream] = path.startsWith('file://')
        ? await open(
            path.slice('file://'.length),
            constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND,
            0o640,
          )
        : await open(path, constants.O_WRONLY);
    }
    return new ProcessOutput(streams);
  }

  write(stream: 'stdout' | 'stderr', data: Buffer): void {
    const handle = this.#streams[stream];
    if (!handle) return;
    this.#pending = this.#pending.then(() =>
      handle.write(data).then(
        () => undefined,
        () => {
          delete this.#streams[stream];
        },
      ),
    );
  }

  /** Flushes what was written, then closes both ends (the reader then sees end of file). */
  async close(): Promise<void> {
    await this.#pending;
    for (const handle of Object.values(this.#streams)) await handle.close().catch(() => undefined);
    for (const key of Object.keys(this.#streams)) delete this.#streams[key as 'stdout'];
  }
}

/**
 * One process's stdin: the FIFO containerd named in Create/Exec, copied to
 * the guest one chunk at a time (the next read waits for the guest to take
 * the last, so a process that does not read holds back containerd's writer).
 * Opened read-write, so it never blocks for a writer nor reads end of file
 * when one writer goes (an attach that detaches): stdin ends with CloseIO.
 */
export class ProcessInput {
  readonly #fd: number;
  readonly #socket: Socket;
  readonly #forward: (data: Buffer) => Promise<void>;
  #pending: Promise<void> = Promise.resolve();
  #failed = false;

  private constructor(fd: number, forward: (data: Buffer) => Promise<void>) {
    this.#fd = fd;
    this.#forward = forward;
    this.#socket = new Socket({ fd, readable: true, writable: false });
    this.#socket.on('data', (chunk: Buffer) => {
      this.#socket.pause();
      this.#send(chunk);
      void this.#pending.then(() => {
        if (!this.#failed && !this.#socket.destroyed) this.#socket.resume();
      });
    });
    this.#socket.on('error', () => this.#socket.destroy());
  }

  static open(path: string, forward: (data: Buffer) => Promise<void>): ProcessInput {
    // A FIFO opened read-write returns at once; a raw fd, since the socket owns and closes it.
    return new ProcessInput(openSync(path, constants.O_RDWR | constants.O_NONBLOCK), forward);
  }

  #send(chunk: Buffer): void {
    this.#pending = this.#pending.then(() =>
      this.#failed
        ? undefined
        : this.#forward(chunk).catch(() => {
            // The process is gone or closed its stdin: what follows has nowhere to go.
            this.#failed = true;
          }),
    );
  }

  /**
   * Forwards what the writer put in the FIFO before asking for the close
   * (containerd writes everything, then calls CloseIO, then closes its end),
   * then stops reading. Resolves once the guest took it all.
   */
  async close(): Promise<void> {
    if (!this.#socket.destroyed) {
      this.#socket.pause();
      for (let chunk = this.#socket.read() as Buffer | null; chunk; chunk = this.#socket.read())
        this.#send(chunk);
      const buffer = Buffer.alloc(64 * 1024);
      for (;;) {
        let n: number;
        try {
          n = readSync(this.#fd, buffer);
        } catch {
          break; // EAGAIN: the FIFO is empty.
        }
        if (n === 0) break;
        this.#send(Buffer.from(buffer.subarray(0, n)));
      }
      this.#socket.destroy();
    }
    await this.#pending;
  }

  /** Stops copying (the process is gone); what was not forwarded is dropped. */
  destroy(): void {
    this.#failed = true;
    this.#socket.destroy();
  }
}
