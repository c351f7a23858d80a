import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const EDGEBOX = fileURLToPath(new URL('../../bin/edgebox.js', import.meta.url));

/**
 * The edge controller-manager as the demo runs it: `edgebox ecm` in its own
 * process against the control plane's kubeconfig (the demo runs the command,
 * it does not import the ECM: parts never import each other). Its timings are
 * shortened from the defaults (5s / 50s / 60s) so a node goes dark in seconds.
 */
export class DemoEcm {
  readonly #child: ChildProcess;
  readonly #exited: Promise<number | null>;
  #stderr = '';

  /** Runs against the control plane at `apiUrl` (plain HTTP), with a kubeconfig written into `dir`. */
  constructor(apiUrl: string, dir: string) {
    const kubeconfig = join(dir, 'ecm-kubeconfig.yaml');
    // client-node refuses plain HTTP unless TLS checks are explicitly off; on loopback there is no TLS to check.
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'demo', cluster: { server: apiUrl, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'ecm', user: {} }],
        contexts: [{ name: 'demo', context: { cluster: 'demo', user: 'ecm' } }],
        'current-context': 'demo',
      }),
    );
    this.#child = spawn(
      process.execPath,
      [
        EDGEBOX,
        'ecm',
        '--kubeconfig',
        kubeconfig,
        '--node-monitor-period',
        '500ms',
        '--node-monitor-grace-period',
        '2s',
        '--node-startup-grace-period',
        '2s',
        // One zone: both edge nodes are tainted at once rather than 10 s apart.
        '--node-eviction-rate',
        '10',
        '--leader-elect',
        'false',
        '--metrics-listen',
        '127.0.0.1:0',
        // The control plane goes away in act 3; its reconnect attempts are not the story.
        '--log-level',
        process.env.DEMO_ECM_LOG ?? 'fatal',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.#child.stderr?.setEncoding('utf8').on('data', (c: string) => {
      this.#stderr = (this.#stderr + c).slice(-2000);
    });
    this.#exited = new Promise((resolve) => this.#child.on('exit', (code) => resolve(code)));
  }

  /** Why it is not running, or undefined while it is. */
  exitReason(): string | undefined {
    const code = this.#child.exitCode;
    return code === null ? undefined : `edgebox ecm exited (${code}): ${this.#stderr.trim()}`;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode === null) this.#child.kill('SIGTERM');
    await this.#exited;
  }
}
