import type { Command } from 'commander';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** Flags with no commander defaults: an omitted flag must not hide a YAML or env value. */
function addHubOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'YAML file with any of these options (keys in camelCase)')
    .option('--server <url>', 'upstream kube-apiserver URL (repeatable, for fail-over)', collect)
    .option(
      '--upstream-kubeconfig <path>',
      "kubeconfig for upstream: its server, CA and the hub's credentials",
    )
    .option(
      '--listen <host:port>',
      'plain-HTTP listener for node components (default 127.0.0.1:10271)',
    )
    .option(
      '--data-dir <dir>',
      'cache store directory (default /var/lib/edgebox/hub as root, else ./.edgebox/hub)',
    )
    .option('--node-name <name>', 'this node (default: the hostname)')
    .option(
      '--cache-agents <list>',
      'components whose reads are cached and served offline, or * (default kubelet,kube-proxy,coredns,flanneld)',
    )
    .option('--health-interval <duration>', 'upstream health probe interval (default 5s)')
    .option('--health-timeout <duration>', 'upstream probe and connect timeout (default 2s)')
    .option(
      '--health-failure-threshold <n>',
      'consecutive failures that mark a server down (default 3)',
    )
    .option(
      '--health-success-threshold <n>',
      'consecutive successes that mark a server up again (default 2)',
    )
    .option(
      '--hub-service-address <host:port>',
      'where pods reach the hub: kubelet and kube-proxy see the default/kubernetes Service there',
    )
    .option(
      '--disable-filters <list>',
      'response filters to turn off: masterservice,masterendpoints,discardcloudservice',
    )
    .option(
      '--shared-resources <list>',
      'resources read through one upstream watch for the whole node, or none ' +
        '(default services,endpointslices.discovery.k8s.io; never secrets)',
    )
    .option(
      '--metrics-listen <host:port>',
      'listener for /metrics, /healthz, /readyz, /edgebox/status (default 127.0.0.1:10272)',
    )
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (default info)');
}

function splitConfig(opts: Record<string, unknown>): {
  file: string | undefined;
  flags: Record<string, unknown>;
} {
  const { config, ...flags } = opts;
  return { file: typeof config === 'string' ? config : undefined, flags };
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

/** `edgebox hub` (run the hub) and `edgebox hub status` (what is cached, is upstream reachable). */
export function registerHubCommands(program: Command): void {
  const hub = addHubOptions(
    program
      .command('hub')
      .description(
        'Run EdgeHub: the node-local caching proxy between node components and kube-apiserver',
      ),
  ).action(async (opts: Record<string, unknown>) => {
    const { loadHubConfig } = await import('./config.ts');
    const { startHub } = await import('./hub.ts');
    const { file, flags } = splitConfig(opts);
    const config = loadHubConfig({ flags, file });
    const running = await startHub(config);
    await waitForSignal();
    // A second signal while draining exits at once.
    const force = () => process.exit(130);
    process.once('SIGTERM', force);
    process.once('SIGINT', force);
    try {
      await running.close();
    } finally {
      process.off('SIGTERM', force);
      process.off('SIGINT', force);
    }
  });

  hub
    .command('status')
    .description(
      'Show what the hub has cached (per component and resource) and whether upstream is reachable',
    )
    .option('--config <file>', "the hub's YAML config file (for --data-dir and --listen)")
    .option('--data-dir <dir>', 'cache store directory, read when no hub is running')
    .option('--listen <host:port>', 'address of a running hub (default 127.0.0.1:10271)')
    .action(async (_opts: Record<string, unknown>, cmd: Command) => {
      const { loadHubOptions } = await import('./config.ts');
      // `hub` shares --config/--data-dir/--listen and may have parsed them: take both.
      const opts = cmd.optsWithGlobals<Record<string, unknown>>();
      const { hubStatusReport } = await import('./status-command.ts');
      const { file, flags } = splitConfig(opts);
      const options = loadHubOptions({ flags, file });
      process.stdout.write(await hubStatusReport(options));
    });
}
