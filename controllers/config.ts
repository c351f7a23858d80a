import { z } from 'zod';
import { durationSchema } from '../src/config/duration.ts';

const booleanFlag = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0'])])
  .transform((v) => v === true || v === 'true' || v === '1');

const rate = z.coerce.number().nonnegative();

/**
 * `edgebox ecm` options. Durations are Go durations ("5s") turned into
 * milliseconds; names and defaults are kube-controller-manager's where it
 * has the same option.
 */
export const EcmConfigSchema = z
  .object({
    kubeconfig: z.string().optional(),
    mode: z.enum(['standalone', 'cooperative']).default('standalone'),
    nodeMonitorPeriod: durationSchema.default(5_000),
    nodeMonitorGracePeriod: durationSchema.default(50_000),
    nodeStartupGracePeriod: durationSchema.default(60_000),
    nodeEvictionRate: rate.default(0.1),
    secondaryNodeEvictionRate: rate.default(0.01),
    unhealthyZoneThreshold: z.coerce.number().min(0).max(1).default(0.55),
    largeClusterSizeThreshold: z.coerce.number().int().nonnegative().default(50),
    leaderElect: booleanFlag.default(true),
    leaderElectNamespace: z.string().min(1).optional(),
    leaderElectName: z.string().min(1).default('edgebox-ecm'),
    leaderElectLeaseDuration: durationSchema.default(15_000),
    leaderElectRenewDeadline: durationSchema.default(10_000),
    leaderElectRetryPeriod: durationSchema.default(2_000),
    metricsListen: z.string().default('0.0.0.0:10290'),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
  })
  .refine((c) => c.nodeMonitorPeriod > 0, {
    path: ['nodeMonitorPeriod'],
    message: 'must be more than 0',
  })
  .refine((c) => c.nodeMonitorGracePeriod > c.nodeMonitorPeriod, {
    path: ['nodeMonitorGracePeriod'],
    message:
      'must be longer than --node-monitor-period, or every node looks dead between two looks',
  })
  .refine((c) => c.leaderElectRenewDeadline < c.leaderElectLeaseDuration, {
    path: ['leaderElectRenewDeadline'],
    message: 'must be shorter than --leader-elect-lease-duration',
  })
  .refine((c) => c.leaderElectRetryPeriod < c.leaderElectRenewDeadline, {
    path: ['leaderElectRetryPeriod'],
    message: 'must be shorter than --leader-elect-renew-deadline',
  });

export type EcmConfig = z.output<typeof EcmConfigSchema>;

/** The defaults, as a config object (for tests and the benchmark). */
export function defaultEcmConfig(
  overrides: Partial<z.input<typeof EcmConfigSchema>> = {},
): EcmConfig {
  return EcmConfigSchema.parse(overrides);
}
