import { spawn } from 'node:child_process';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { sandboxUnavailable } from '../../edge-hub/demo/demo-sandbox.ts';

const DEMO = fileURLToPath(new URL('../../edge-hub/demo/run-demo.ts', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the demo as `npm start` does (a plain Node process), without the pauses for a reader. */
function runDemo(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, EDGEBOX_LOG_LEVEL: 'error' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The live line of one step: `  1.2s  <step>  <what the client saw>  [<source>]`. */
function stepLine(stdout: string, step: string): string {
  const line = stdout.split('\n').find((l) => new RegExp(`^\\s*\\d+\\.\\ds\\s+${step}\\s`).test(l));
  if (line === undefined) throw new Error(`the demo printed no "${step}" step:\n${stdout}`);
  return line;
}

/** Whether the machine can run the microVM act (the demo's own rule, asked the same way). */
const sandbox = sandboxUnavailable();

describe('npm start (the demo of the whole product)', () => {
  it('runs the outage story end to end and prints the timeline table', async () => {
    const run = await runDemo(['--pace=0']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = run.stdout;

    // A progress line per act.
    for (let act = 1; act <= 6; act++) expect(out).toMatch(new RegExp(`^Act ${act}: `, 'm'));
    // The ECM: both nodes unreachable, the plain node's pod evicted at its toleration, the autonomous node's kept.
    expect(stepLine(out, 'ECM started')).toMatch(/edge-1 EdgeAutonomy=True \(Autonomous: /);
    expect(stepLine(out, 'nodes go dark')).toMatch(
      /edge-2 NoSchedule and NoExecute, edge-1 \(autonomous\) NoSchedule only/,
    );
    expect(stepLine(out, 'plain node evicted')).toMatch(
      /edge-2's pod web-9 evicted .*tolerationSeconds: 4/,
    );
    expect(stepLine(out, 'autonomous node kept')).toMatch(
      /keeps db-0, web-0, web-1: EdgeAutonomy=True \(RunningOffline: /,
    );

    expect(stepLine(out, 'online sync')).toMatch(/pods db-0, web-0, web-1;.*\[upstream\]$/);
    expect(stepLine(out, 'control plane cut')).toMatch(/re-opened on the hub's cache.*\[cache\]$/);
    expect(stepLine(out, 'offline GET')).toMatch(/pod web-0: 200.*\[cache\]$/);
    expect(stepLine(out, 'offline LIST')).toMatch(
      /spec\.nodeName=edge-1: db-0, web-0, web-1 {2}\[cache\]$/,
    );
    expect(stepLine(out, 'offline heartbeat')).toMatch(/acknowledged on the node: 200.*\[cache\]$/);
    expect(stepLine(out, 'offline write')).toMatch(/503 "the node is offline.*\[cache\]$/);
    expect(stepLine(out, 'hub restarted')).toMatch(/first LIST \d+ ms after.*\[cache\]$/);
    expect(stepLine(out, 'kubelet restarted')).toMatch(/synced from the cache.*\[cache\]$/);
    expect(stepLine(out, 'link restored')).toMatch(/closed its offline watches.*\[upstream\]$/);
    expect(stepLine(out, 'change arrives')).toMatch(
      /web-2 and web-config THEME=dark.*\[upstream\]$/,
    );
    expect(stepLine(out, 'online again')).toMatch(/pod web-2: 200.*\[upstream\]$/);
    expect(stepLine(out, 'nothing lost')).toMatch(/edge-1 still has db-0, web-0, web-1, web-2/);
    // The microVM: its kernel is not the host's; without QEMU, the demo says what it skipped and why.
    if (sandbox === undefined) {
      expect(stepLine(out, 'untrusted pod')).toMatch(
        new RegExp(`uname -r printed \\S+; the host runs ${release().replace(/\./g, '\\.')}`),
      );
    } else {
      expect(stepLine(out, 'untrusted pod')).toContain(`skipped: ${sandbox}`);
    }

    // The closing table repeats the steps with their sources.
    const table = out.slice(out.indexOf('Timeline'));
    expect(table).toMatch(/│ time\s+│ step\s+│ what the client saw\s+│ source\s+│/);
    expect(table).toMatch(/│ offline LIST\s+│.*│ cache\s+│/);
    expect(table).toMatch(/│ change arrives\s+│.*│ upstream\s+│/);
    expect(out).toContain('Demo complete');
    // The microVM act boots a guest under TCG here (and builds its image on a first run).
  }, 300_000);

  it('refuses a bad --pace with a one-line usage error and exit code 2', async () => {
    const run = await runDemo(['--pace=soon']);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toContain('usage: run-demo.ts [--pace=MS]');
  });
});
