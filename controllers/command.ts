import type { Command } from 'commander';
import { loadConfig } from '../src/config/load.ts';

/** Adds `edgebox ecm` (the edge controller-manager) to the CLI. */
export function registerEcmCommands(program: Command): void {
  program
    .command('ecm')
    .description(
      'Edge controller-manager: node lifecycle that keeps the pods of autonomous nodes\n' +
        'bound while they run offline (see controllers/README.md)',
    )
    .option('--kubeconfig <path>', 'kubeconfig to use (in-cluster config when omitted)')
    .option(
      '--mode <mode>',
      'standalone (replaces the node lifecycle controller) or cooperative (default standalone)',
    )
    .option('--node-monitor-period <duration>', 'how often node health is checked (default 5s)')
    .option(
      '--node-monitor-grace-period <duration>',
      'silence after which a node is unreachable (default 50s)',
    )
    .option(
      '--node-startup-grace-period <duration>',
      'the same for a node never Ready (default 60s)',
    )
    .option(
      '--node-eviction-rate <qps>',
      'nodes tainted NoExecute per second per zone (default 0.1)',
    )
    .option(
      '--secondary-node-eviction-rate <qps>',
      'that rate in a partially disrupted large zone (default 0.01)',
    )
    .option(
      '--unhealthy-zone-threshold <ratio>',
      'not-Ready share that makes a zone partially disrupted (default 0.55)',
    )
    .option(
      '--large-cluster-size-threshold <n>',
      'zones above this size keep evicting when partially disrupted (default 50)',
    )
    .option('--leader-elect <bool>', 'run leader election on a Lease (default true)')
    .option(
      '--leader-elect-namespace <ns>',
      'namespace of the leader Lease (default: the pod namespace)',
    )
    .option('--leader-elect-name <name>', 'name of the leader Lease (default edgebox-ecm)')
    .option('--leader-elect-lease-duration <duration>', 'default 15s')
    .option('--leader-elect-renew-deadline <duration>', 'default 10s')
    .option('--leader-elect-retry-period <duration>', 'default 2s')
    .option(
      '--metrics-listen <host:port>',
      'address of /healthz and /metrics (default 0.0.0.0:10290)',
    )
    .option('--log-level <level>', 'trace, debug, info, warn, error (default info)')
    .option('--config <file>', 'YAML file with any of the options above (camelCase keys)')
    .action(async (opts: Record<string, unknown>) => {
      const [{ EcmConfigSchema }, { runEcm }] = await Promise.all([
        import('./config.ts'),
        import('./ecm-main.ts'),
      ]);
      const { config: file, ...flags } = opts;
      const config = loadConfig(EcmConfigSchema, {
        flags,
        file: typeof file === 'string' ? file : undefined,
        envPrefix: 'EDGEBOX_ECM_',
      });
      await runEcm(config);
    });
}
