type Stream = 'stdout' | 'stderr';
type Flush = (
  containerId: string,
  execId: string | undefined,
  stream: Stream,
  data: Buffer,
) => void;

/**
 * Batches container output into few, larger messages: a process printing one
 * byte at a time must not turn into thousands of frames a second (the host
 * cuts off guests that exceed its message rate).
 */
export class OutputCoalescer {
  static readonly MAX_BATCH_BYTES = 256 * 1024;
  static readonly DELAY_MS = 10;
  readonly #flushOne: Flush;
  readonly #pending = new Map<
    string,
    {
      containerId: string;
      execId: string | undefined;
      stream: Stream;
      chunks: Buffer[];
      size: number;
    }
  >();
  #timer: NodeJS.Timeout | undefined;

  constructor(flush: Flush) {
    this.#flushOne = flush;
  }

  add(containerId: string, execId: string | undefined, stream: Stream, data: Buffer): void {
    const key = `${containerId}\0${execId ?? ''}\0${stream}`;
    let entry = this.#pending.get(key);
    if (!entry) {
      entry = { containerId, execId, stream, chunks: [], size: 0 };
      this.#pending.set(key, entry);
    }
    entry.chunks.push(data);
    entry.size += data.length;
    if (entry.size >= OutputCoalescer.MAX_BATCH_BYTES) {
      this.#pending.delete(key);
      this.#flushOne(containerId, execId, stream, Buffer.concat(entry.chunks));
      return;
    }
    this.#timer ??= setTimeout(() => this.flush(), OutputCoalescer.DELAY_MS);
  }

  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const entries = [...this.#pending.values()];
    this.#pending.clear();
    for (const e of entries)
      this.#flushOne(e.containerId, e.execId, e.stream, Buffer.concat(e.chunks));
  }
}
