import type { Command } from 'commander';
import { DEFAULT_HUB_URL, DEFAULT_PATHS, NodeSetup } from './node-setup.ts';
import { Systemctl } from './service-manager.ts';

interface NodeOptions {
  kubeletKubeconfig: string;
  containerdConfig: string;
  hubEnvironment: string;
  hubUrl: string;
  root?: string;
  dryRun?: boolean;
}

function addNodeOptions(cmd: Command): Command {
  return cmd
    .option('--kubelet-kubeconfig <path>', "kubelet's kubeconfig", DEFAULT_PATHS.kubeletKubeconfig)
    .option('--containerd-config <path>', "containerd's config", DEFAULT_PATHS.containerdConfig)
    .option(
      '--hub-environment <path>',
      "the hub unit's EnvironmentFile (which kubeconfig the hub forwards with)",
      DEFAULT_PATHS.hubEnvironment,
    )
    .option('--hub-url <url>', 'where kubelet reaches the hub', DEFAULT_HUB_URL)
    .option('--root <dir>', 'act on the tree under DIR instead of / (services are not touched)')
    .option('--dry-run', 'print what would change, change nothing');
}

function setup(opts: NodeOptions): NodeSetup {
  return new NodeSetup({
    paths: {
      kubeletKubeconfig: opts.kubeletKubeconfig,
      containerdConfig: opts.containerdConfig,
      hubEnvironment: opts.hubEnvironment,
    },
    ...(opts.root === undefined ? {} : { root: opts.root }),
    hubUrl: opts.hubUrl,
    services: opts.root === undefined ? new Systemctl() : undefined,
    dryRun: opts.dryRun === true,
    report: (line) => process.stdout.write(`${line}\n`),
  });
}

/** `edgebox node enable|disable`: put this node behind EdgeHub with the edgebox runtime, and back. */
export function registerNodeCommands(program: Command): void {
  const node = program
    .command('node')
    .description(
      'put this kubeadm-style node behind EdgeHub with the edgebox runtime, or take it back',
    );
  addNodeOptions(
    node
      .command('enable')
      .description(
        "start EdgeHub, point kubelet's kubeconfig at it, add the edgebox runtime to containerd,\n" +
          'restart what must restart, and print each change (originals kept beside as <file>.edgebox-orig)',
      ),
  ).action(async (opts: NodeOptions) => {
    await setup(opts).enable();
  });
  addNodeOptions(
    node
      .command('disable')
      .description(
        'put back every file enable changed, byte for byte, restart kubelet and containerd, stop EdgeHub',
      ),
  ).action(async (opts: NodeOptions) => {
    await setup(opts).disable();
  });
}
