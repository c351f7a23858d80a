// `npm start`: the ECM keeping an autonomous node's pods and EdgeHub keeping
// a kubelet-like client working through an outage, then (with QEMU) a
// microVM, on a laptop with no cluster. `--pace=MS` sets the pause between
// acts (default 4000; tests use 0).
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { DemoFailure, runDemo } from './demo-scenario.ts';
import { Timeline } from './demo-timeline.ts';

const argsSchema = z.object({
  pace: z.coerce.number().int().min(0).max(60_000).default(4000),
});

async function main(argv: string[]): Promise<number> {
  const usage = (problem: string) => {
    process.stderr.write(`edgebox demo: ${problem} (usage: run-demo.ts [--pace=MS])\n`);
    return 2;
  };
  let values: unknown;
  try {
    values = parseArgs({ args: argv, options: { pace: { type: 'string' } } }).values;
  } catch (err) {
    return usage(err instanceof Error ? err.message : String(err));
  }
  const args = argsSchema.safeParse(values);
  if (!args.success) {
    return usage(args.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; '));
  }
  const pace = args.data.pace;
  // http-proxy 1.18 (the hub's forwarding) calls util._extend; its deprecation
  // notice says nothing about the demo and lands in the middle of it.
  process.noDeprecation = true;
  const timeline = new Timeline(process.stdout);
  const columns = process.stdout.isTTY ? process.stdout.columns : 100;
  process.stdout.write(
    'edgebox demo: a kube-apiserver double, the edge controller-manager (edgebox ecm), EdgeHub and a\n' +
      'kubelet-like client (client-node informers), all on this machine; then, where QEMU is installed, a\n' +
      'microVM. Watch an autonomous node keep its pods, and keep working, while its control plane is away.\n',
  );
  try {
    await runDemo({ timeline, paceMs: pace });
  } catch (err) {
    const reason =
      err instanceof DemoFailure
        ? `step "${err.step}" did not behave: ${err.reason}`
        : `unexpected error: ${err instanceof Error ? err.message : String(err)}`;
    process.stdout.write(`\n${timeline.table(columns)}\n`);
    process.stderr.write(`edgebox demo FAILED: ${reason}\n`);
    return 1;
  }
  process.stdout.write(`\nTimeline\n${timeline.table(columns)}\n`);
  process.stdout.write(
    'Demo complete: the autonomous node kept its pods and every read was answered while the control plane\n' +
      'was away, and nothing stale survived its return.\n',
  );
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
