import { createWriteStream, type WriteStream } from 'node:fs';

/** Bytes of console output written to the log file; the guest decides how much it prints. */
export const MAX_CONSOLE_LOG_BYTES = 1024 * 1024;
/** Bytes of the most recent console output kept in memory for error messages. */
const TAIL_BYTES = 16 * 1024;

/** C0 and C1 controls but tab, DEL, and the Unicode bidi overrides and isolates. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const UNPRINTABLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

function escapeCharacter(c: string): string {
  const code = c.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`;
}

/**
 * The guest's serial console, read by the host from QEMU's stdout. The guest
 * is untrusted and can print without end, so the log file stops at
 * `maxBytes` and only the last few KiB stay in memory; a file QEMU wrote
 * itself would grow until the run directory's file system (tmpfs: host
 * memory) is full.
 */
export class ConsoleLog {
  readonly path: string;
  readonly maxBytes: number;
  readonly #file: WriteStream;
  #written = 0;
  #tail = Buffer.alloc(0);

  constructor(path: string, maxBytes = MAX_CONSOLE_LOG_BYTES) {
    this.path = path;
    this.maxBytes = maxBytes;
    this.#file = createWriteStream(path, { flags: 'a' });
    this.#file.on('error', () => undefined);
  }

  write(chunk: Buffer): void {
    const recent = Buffer.concat([this.#tail, chunk.subarray(-TAIL_BYTES)]);
    this.#tail = recent.subarray(-TAIL_BYTES);
    if (this.#written >= this.maxBytes) return;
    const take = chunk.subarray(0, this.maxBytes - this.#written);
    this.#written += take.length;
    this.#file.write(take);
    if (this.#written >= this.maxBytes)
      this.#file.write(`\n[edgebox: console log truncated at ${this.maxBytes} bytes]\n`);
  }

  /**
   * The last `lines` lines the guest printed (at most a few KiB, whatever it
   * printed), with control characters escaped: they end up in error messages
   * on an operator's terminal, where a hostile guest's escape sequences or
   * carriage returns could rewrite what the operator reads.
   */
  tail(lines: number): string {
    return (
      this.#tail
        .toString('utf8')
        .trimEnd()
        .split('\n')
        .slice(-lines)
        // A serial console ends lines with CRLF: only a carriage return inside a line is suspect.
        .map((line) => line.replace(/\r$/, '').replace(UNPRINTABLE, escapeCharacter))
        .join('\n')
    );
  }

  /** Flushes and closes the file. */
  close(): Promise<void> {
    return new Promise((resolve) => this.#file.end(resolve));
  }
}
