import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { call } from '../../test/support/http-call.ts';
import { createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/** A port nothing listens on right now (the hub is told to use it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface PlainAnswer {
  status: number;
  source: string | undefined;
  body: string;
}

/** One GET without keep-alive; rejects on connection errors (ECONNREFUSED while a hub boots). */
export async function plainGet(
  url: string,
  headers: Record<string, string> = {},
): Promise<PlainAnswer> {
  const answer = await call(url, { headers });
  const source = answer.headers['x-edgebox-source'];
  return {
    status: answer.status,
    source: typeof source === 'string' ? source : undefined,
    body: answer.body,
  };
}

export interface HubLaunch {
  /** The program and its first arguments, e.g. [node, bin/edgebox.js]. */
  command: readonly string[];
  servers: readonly string[];
  dataDir: string;
  /** The hub's stderr (its pino log) goes here, for the reason when something fails. */
  logFile: string;
  nodeName: string;
  extraArgs?: readonly string[];
}

export interface MemoryReading {
  /** VmRSS: resident now. */
  rssBytes: number;
  /** VmHWM: the most it was resident. */
  peakBytes: number;
}

/** Resident memory of a process, from /proc (Linux). */
export function readMemory(pid: number): MemoryReading {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssBytes: kb('VmRSS') * 1024, peakBytes: kb('VmHWM') * 1024 };
}

/** `edgebox hub` as its own process, on free loopback ports. */
export class HubProcess {
  readonly url: string;
  readonly metricsUrl: string;
  /** performance.now() just before spawn. */
  readonly spawnedAt: number;
  readonly #child: ChildProcess;
  readonly #logFile: string;
  readonly #exited: Promise<number | null>;

  private constructor(
    child: ChildProcess,
    port: number,
    metricsPort: number,
    spawnedAt: number,
    logFile: string,
  ) {
    this.#child = child;
    this.url = `http://127.0.0.1:${port}`;
    this.metricsUrl = `http://127.0.0.1:${metricsPort}`;
    this.spawnedAt = spawnedAt;
    this.#logFile = logFile;
    this.#exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async spawn(launch: HubLaunch): Promise<HubProcess> {
    const port = await freePort();
    const metricsPort = await freePort();
    const [program, ...first] = launch.command;
    if (program === undefined) throw new Error('no command to start the hub with');
    const args = [
      ...first,
      'hub',
      ...launch.servers.flatMap((s) => ['--server', s]),
      '--listen',
      `127.0.0.1:${port}`,
      '--metrics-listen',
      `127.0.0.1:${metricsPort}`,
      '--data-dir',
      launch.dataDir,
      '--node-name',
      launch.nodeName,
      '--cache-agents',
      'kubelet',
      '--health-interval',
      '250ms',
      '--health-timeout',
      '500ms',
      '--log-level',
      'warn',
      ...(launch.extraArgs ?? []),
    ];
    const log = openSync(launch.logFile, 'a');
    const spawnedAt = performance.now();
    try {
      const child = spawn(program, args, { stdio: ['ignore', 'ignore', log] });
      return new HubProcess(child, port, metricsPort, spawnedAt, launch.logFile);
    } finally {
      closeSync(log);
    }
  }

  get pid(): number {
    const pid = this.#child.pid;
    if (pid === undefined) throw new Error(`the hub process did not start (log: ${this.#logFile})`);
    return pid;
  }

  #logTail(): string {
    try {
      return readFileSync(this.#logFile, 'utf8').trim().split('\n').slice(-3).join(' | ');
    } catch {
      return '(no log)';
    }
  }

  /**
   * Retries `path` (ECONNREFUSED while the hub boots) until `accept` likes an
   * answer; resolves with that answer and the milliseconds since spawn.
   */
  async firstAnswer(
    path: string,
    headers: Record<string, string>,
    accept: (a: PlainAnswer) => boolean,
    timeoutMs = 30_000,
  ): Promise<{ answer: PlainAnswer; sinceSpawnMs: number }> {
    const deadline = performance.now() + timeoutMs;
    let last = 'no answer';
    while (performance.now() < deadline) {
      if (this.#child.exitCode !== null) {
        throw new Error(`the hub exited with ${this.#child.exitCode}: ${this.#logTail()}`);
      }
      try {
        const answer = await plainGet(`${this.url}${path}`, headers);
        if (accept(answer)) return { answer, sinceSpawnMs: performance.now() - this.spawnedAt };
        last = `HTTP ${answer.status} from ${answer.source ?? '?'}: ${answer.body.slice(0, 200)}`;
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      }
      await delay(1);
    }
    throw new Error(
      `no acceptable answer to ${path} within ${timeoutMs} ms (last: ${last}; log: ${this.#logTail()})`,
    );
  }

  async waitReady(timeoutMs = 30_000): Promise<void> {
    await this.firstAnswer('/readyz', {}, (a) => a.status === 200, timeoutMs);
  }

  /** Polls /edgebox/status until the hub says upstream is `state`. */
  async waitUpstream(state: 'up' | 'down', timeoutMs = 15_000): Promise<void> {
    await this.firstAnswer(
      '/edgebox/status',
      {},
      (a) =>
        a.status === 200 &&
        (JSON.parse(a.body) as { upstream?: { state?: string } }).upstream?.state === state,
      timeoutMs,
    );
  }

  async metrics(): Promise<string> {
    const answer = await plainGet(`${this.metricsUrl}/metrics`);
    if (answer.status !== 200) throw new Error(`hub /metrics answered ${answer.status}`);
    return answer.body;
  }

  memory(): MemoryReading {
    return readMemory(this.pid);
  }

  /** SIGTERM (graceful close), SIGKILL if it is still there after 10 s. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }
}

/** The value of one Prometheus sample line, e.g. `name{a="b"} 12`; 0 when absent. */
export function metricValue(text: string, name: string, labels = ''): number {
  const prefix = labels === '' ? `${name} ` : `${name}{${labels}} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(prefix.length));
}
