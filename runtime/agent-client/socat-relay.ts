import type { ChildProcess } from 'node:child_process';
import { Duplex } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ProcessTracker, TrackedProcess } from '../process/tracker.ts';

/** socat's address for the guest agent's vsock listener. */
export function vsockConnectAddress(cid: number, port: number): string {
  return `VSOCK-CONNECT:${cid}:${port}`;
}

/**
 * socat arguments: -b raises the block socat moves per read from 8 KiB (its
 * default) to 64 KiB, so bulk output takes fewer syscalls; STDIO is our pipe.
 */
export function socatRelayArgs(address: string): string[] {
  return ['-b', '65536', 'STDIO', address];
}

export interface SocatRelayOptions {
  socatPath: string;
  /** The guest end as a socat address: vsockConnectAddress(...), or UNIX-CONNECT:path in tests. */
  address: string;
  /** Owns every socat started, so each is reaped on every path. */
  processes: ProcessTracker;
  /** Give up when no attempt has connected within this long. */
  timeoutMs: number;
  /** Aborts the attempts (the VM died); the current socat is killed. */
  signal?: AbortSignal;
  /** Called after each attempt that ended before connecting, with socat's reason. */
  onAttemptFailed?: (attempt: number, reason: string) => void;
  /** Pause between attempts: starts at `first`, grows by half up to `max`. */
  retryDelayMs?: { first: number; max: number };
}

const PROCESS_NAME = 'vsock-relay';

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1)?.trim() ?? '';
}

function describeExit(process: TrackedProcess, stderr: string): string {
  // The child's own fields: 'close' may fire before the tracker has recorded the exit.
  const { exitCode, signalCode } = process.child;
  const how =
    signalCode !== null
      ? `was killed by ${signalCode}`
      : exitCode !== null
        ? `exited with code ${exitCode}`
        : 'is still running';
  const said = lastLine(stderr);
  return `socat ${how}${said ? `: ${said}` : ''}`;
}

/**
 * The host end of the vsock channel: socat's stdin and stdout as one duplex
 * stream. socat exiting (the guest closed the connection, the VM died, socat
 * was killed) destroys the stream with an error naming the cause, which the
 * AgentChannel turns into a closed channel, and so a failed sandbox.
 */
class SocatStream extends Duplex {
  readonly #process: TrackedProcess;
  readonly #child: ChildProcess;
  readonly #address: string;
  /** socat's last words, gathered since it was spawned (attempt()). */
  readonly #stderr: StderrTail;

  constructor(process: TrackedProcess, first: Buffer, stderr: StderrTail, address: string) {
    super();
    this.#process = process;
    this.#child = process.child;
    this.#address = address;
    this.#stderr = stderr;
    const { stdout, stdin } = this.#child;
    if (!stdout || !stdin) throw new Error('socat relay spawned without pipes');
    // Writes after socat died fail with EPIPE; the exit below says why.
    stdin.on('error', () => undefined);
    this.push(first);
    stdout.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) stdout.pause();
    });
    const stdoutDone = new Promise<void>((resolve) => {
      stdout.once('end', () => {
        this.push(null);
        resolve();
      });
      stdout.once('close', resolve);
    });
    // After the exit and after stdout has delivered its last bytes. Not the child's
    // 'close' event: it may have fired already, while this attempt was being judged.
    void Promise.all([this.#process.exited, stdoutDone]).then(() => {
      if (this.destroyed) return;
      const cause =
        this.#child.exitCode === 0 ? 'the guest end closed the connection' : 'the relay failed';
      this.destroy(
        new Error(
          `vsock relay (socat ${this.#address}) ended, ${cause}: ${describeExit(this.#process, this.#stderr.text)}`,
        ),
      );
    });
  }

  get pid(): number {
    return this.#process.pid;
  }

  override _read(): void {
    this.#child.stdout?.resume();
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    const stdin = this.#child.stdin;
    if (!stdin || stdin.destroyed) {
      callback(new Error(`vsock relay (socat ${this.#address}) is gone`));
      return;
    }
    stdin.write(chunk, () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#child.stdin?.end(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#process.exit) this.#child.kill('SIGTERM');
    callback(error);
  }
}

type Attempt = { connected: true; stream: SocatStream } | { connected: false; reason: string };

/** The end of what a socat wrote on stderr: why it failed, when it does. */
interface StderrTail {
  text: string;
}

async function attempt(options: SocatRelayOptions, deadline: number): Promise<Attempt> {
  const said: StderrTail = { text: '' };
  const collect = (chunk: Buffer): void => {
    said.text = (said.text + chunk.toString()).slice(-2048);
  };
  let firstChunk: Promise<Buffer | undefined> = Promise.resolve(undefined);
  const process = await options.processes.spawn(
    PROCESS_NAME,
    options.socatPath,
    socatRelayArgs(options.address),
    { stdio: ['pipe', 'pipe', 'pipe'] },
    (child) => {
      child.stderr?.on('data', collect);
      const stdout = child.stdout;
      if (!stdout) return;
      // The agent speaks first (its ready message), so the first byte proves a connection;
      // socat ending before it means nobody listened yet (refused, reset, timed out).
      firstChunk = new Promise((resolve) => {
        stdout.once('data', (chunk: Buffer) => {
          stdout.pause();
          resolve(chunk);
        });
        stdout.once('end', () => resolve(undefined));
        stdout.once('close', () => resolve(undefined));
      });
    },
  );
  const stderr = process.child.stderr;
  if (!stderr) throw new Error('socat relay spawned without pipes');
  const onAbort = (): void => {
    process.child.kill('SIGTERM');
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  // A connect to a guest whose vsock driver is not up yet can hang; the deadline ends it.
  const timer = setTimeout(onAbort, Math.max(0, deadline - performance.now()));
  try {
    const first = await firstChunk;
    if (first && !options.signal?.aborted) {
      return { connected: true, stream: new SocatStream(process, first, said, options.address) };
    }
    process.child.kill('SIGTERM');
    await process.exited;
    // Its last words (why it failed) may still be in the pipe.
    await finished(stderr).catch(() => undefined);
    await options.processes.forget(process);
    return { connected: false, reason: describeExit(process, said.text) };
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Connects to the guest agent through a tracked socat (Node has no AF_VSOCK),
 * retrying while the agent is not listening yet, until `timeoutMs`. Resolves
 * with a duplex stream carrying the framed protocol, its first bytes already
 * read; each failed attempt's socat is reaped before the next starts.
 */
export async function connectThroughSocat(
  options: SocatRelayOptions,
): Promise<Duplex & { pid: number }> {
  const deadline = performance.now() + options.timeoutMs;
  const { first, max } = options.retryDelayMs ?? { first: 25, max: 250 };
  let delay = first;
  for (let n = 1; ; n++) {
    options.signal?.throwIfAborted();
    const result = await attempt(options, deadline);
    if (result.connected) return result.stream;
    options.signal?.throwIfAborted();
    options.onAttemptFailed?.(n, result.reason);
    if (performance.now() + delay > deadline) {
      throw new Error(
        `the guest agent did not accept a connection through socat ${options.address} within ${options.timeoutMs} ms (${n} attempts, last: ${result.reason})`,
      );
    }
    // Backoff between attempts, not synchronisation: the guest's boot has no event to wait on.
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(max, Math.ceil(delay * 1.5));
  }
}
