import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { listeningChild } from '../../test/support/listening-child.ts';

const CHILD = fileURLToPath(new URL('./bare-relay-child.ts', import.meta.url));

/**
 * The bare Node relay (bare-relay-child.ts) in its own process, in front of
 * `upstream`: the proxy rows' floor, what relaying a read costs any proxy
 * written in Node on this machine before it does anything of its own.
 */
export class BareRelay {
  readonly url: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;

  private constructor(child: ChildProcess, port: number) {
    this.#child = child;
    this.url = `http://127.0.0.1:${port}`;
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static async start(upstream: string): Promise<BareRelay> {
    const target = new URL(upstream);
    const { child, port } = await listeningChild([CHILD, target.hostname, target.port]);
    return new BareRelay(child, port);
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill('SIGTERM');
    await this.#exited;
  }
}
