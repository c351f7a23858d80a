import { z } from 'zod';
import { durationSchema, formatGoDuration } from '../src/config/duration.ts';

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
  // One check per option pair; each issue names the option and its own value
  // (a plain refine would report the whole configuration as the value).
  .superRefine((c, ctx) => {
    const problem = (key: keyof typeof c, message: string): void =>
      ctx.addIssue({ code: 'custom', path: [key], input: c[key], message });
    if (c.nodeMonitorPeriod <= 0) problem('nodeMonitorPeriod', 'must be more than 0');
    if (c.nodeMonitorGracePeriod <= c.nodeMonitorPeriod) {
      problem(
        'nodeMonitorGracePeriod',
        `must be longer than --node-monitor-period (${formatGoDuration(c.nodeMonitorPeriod)}), or every node looks dead between two looks`,
      );
    }
    if (c.leaderElectRenewDeadline >= c.leaderElectLeaseDuration) {
      problem(
        'leaderElectRenewDeadline',
        `must be shorter than --leader-elect-lease-duration (${formatGoDuration(c.leaderElectLeaseDuration)})`,
      );
    }
    if (c.leaderElectRetryPeriod >= c.leaderElectRenewDeadline) {
      problem(
        'leaderElectRetryPeriod',
        `must be shorter than --leader-elect-renew-deadline (${formatGoDuration(c.leaderElectRenewDeadline)})`,
      );
    }
  });

export type EcmConfig = z.output<typeof EcmConfigSchema>;

/** The defaults, as a config object (for tests and the benchmark). */
export function defaultEcmConfig(
  overrides: Partial<z.input<typeof EcmConfigSchema>> = {},
): EcmConfig {
  return EcmConfigSchema.parse(overrides);
}
