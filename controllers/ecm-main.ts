import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { CliError } from '../src/cli.ts';
import { createLogger } from '../src/log.ts';
import { createMetricsRegistry } from '../src/metrics.ts';
import type { EcmConfig } from './config.ts';
import { Ecm } from './ecm.ts';
import { createEcmHttpServer, parseListenAddress } from './ecm-http.ts';

const SERVICE_ACCOUNT_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path !== undefined) kc.loadFromFile(path);
    else kc.loadFromCluster();
  } catch (err) {
    throw new CliError(
      `loading ${path === undefined ? 'the in-cluster config' : `kubeconfig ${path}`} failed: ${(err as Error).message}`,
    );
  }
  if (kc.getCurrentCluster() === null) {
    throw new CliError(
      path === undefined
        ? 'no --kubeconfig given and not running in a cluster (no service account)'
        : `kubeconfig ${path} has no current cluster`,
    );
  }
  return kc;
}

function podNamespace(): string {
  try {
    return readFileSync(SERVICE_ACCOUNT_NAMESPACE, 'utf8').trim() || 'kube-system';
  } catch {
    return 'kube-system';
  }
}

/** `edgebox ecm`: runs until SIGTERM/SIGINT, then hands the leader lease back. */
export async function runEcm(config: EcmConfig): Promise<void> {
  const logger = createLogger({ name: 'ecm', level: config.logLevel });
  const listen = parseListenAddress(config.metricsListen);
  if (listen instanceof Error) throw new CliError(`--metrics-listen: ${listen.message}`, 2);
  const kubeConfig = loadKubeConfig(config.kubeconfig);
  const registry = createMetricsRegistry();
  const ecm = new Ecm({
    config,
    kubeConfig,
    leaseNamespace: podNamespace(),
    identity: `${hostname()}_${randomUUID()}`,
    logger,
    registry,
  });
  const server = createEcmHttpServer(() => ecm.health(), registry);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new CliError(`listening on ${config.metricsListen} failed: ${err.message}`)),
    );
    server.listen(listen.port, listen.host, resolve);
  });
  const bound = server.address() as AddressInfo;
  // The address actually bound: with port 0 the system chose one.
  logger.info({ listen: `${bound.address}:${bound.port}` }, 'serving /healthz and /metrics');

  // Starting waits for the informers to sync, which never happens while the
  // apiserver is unreachable: a signal must end the process all the same.
  let failure: unknown;
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string): void => {
      logger.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
    ecm.start().catch((err: unknown) => {
      failure = err;
      resolve();
    });
  });
  await ecm.stop({ release: true });
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (failure !== undefined) throw failure;
}
