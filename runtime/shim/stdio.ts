import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

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
