import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { registerEcmCommands } from './command.ts';
import { EcmConfigSchema, defaultEcmConfig } from './config.ts';

function load(flags: Record<string, unknown>, env: Record<string, string> = {}) {
  return loadConfig(EcmConfigSchema, { flags, env, envPrefix: 'EDGEBOX_ECM_' });
}

function problems(flags: Record<string, unknown>): string[] {
  try {
    load(flags);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('edgebox ecm options', () => {
  it("defaults to kube-controller-manager's node lifecycle and leader election settings", () => {
    expect(defaultEcmConfig()).toEqual({
      mode: 'standalone',
      nodeMonitorPeriod: 5_000,
      nodeMonitorGracePeriod: 50_000,
      nodeStartupGracePeriod: 60_000,
      nodeEvictionRate: 0.1,
      secondaryNodeEvictionRate: 0.01,
      unhealthyZoneThreshold: 0.55,
      largeClusterSizeThreshold: 50,
      leaderElect: true,
      leaderElectName: 'edgebox-ecm',
      leaderElectLeaseDuration: 15_000,
      leaderElectRenewDeadline: 10_000,
      leaderElectRetryPeriod: 2_000,
      metricsListen: '0.0.0.0:10290',
      logLevel: 'info',
    });
  });

  it('takes flags as the CLI passes them: Go durations, numbers and booleans as text', () => {
    const config = load({
      kubeconfig: '/etc/kubeconfig',
      mode: 'cooperative',
      nodeMonitorGracePeriod: '40s',
      nodeStartupGracePeriod: '2m',
      nodeEvictionRate: '0.5',
      largeClusterSizeThreshold: '100',
      unhealthyZoneThreshold: '0.6',
      leaderElect: 'false',
    });
    expect(config).toMatchObject({
      kubeconfig: '/etc/kubeconfig',
      mode: 'cooperative',
      nodeMonitorGracePeriod: 40_000,
      nodeStartupGracePeriod: 120_000,
      nodeEvictionRate: 0.5,
      largeClusterSizeThreshold: 100,
      unhealthyZoneThreshold: 0.6,
      leaderElect: false,
    });
  });

  it('reads EDGEBOX_ECM_* variables, with flags winning', () => {
    expect(load({}, { EDGEBOX_ECM_MODE: 'cooperative' }).mode).toBe('cooperative');
    expect(load({ mode: 'standalone' }, { EDGEBOX_ECM_MODE: 'cooperative' }).mode).toBe(
      'standalone',
    );
    expect(
      load({}, { EDGEBOX_ECM_SECONDARY_NODE_EVICTION_RATE: '0.02' }).secondaryNodeEvictionRate,
    ).toBe(0.02);
  });

  it.each<[Record<string, unknown>, string]>([
    [{ mode: 'sideways' }, 'mode = "sideways" (from --mode): '],
    [{ nodeMonitorGracePeriod: '50 seconds' }, 'nodeMonitorGracePeriod = "50 seconds"'],
    [
      { unhealthyZoneThreshold: '1.5' },
      'unhealthyZoneThreshold = 1.5 (from --unhealthy-zone-threshold)',
    ],
    [{ nodeEvictionRate: '-1' }, 'nodeEvictionRate = -1 (from --node-eviction-rate)'],
    [
      { nodeMonitorGracePeriod: '4s' },
      'nodeMonitorGracePeriod = 4000 (from --node-monitor-grace-period): must be longer than --node-monitor-period (5s), or every node looks dead between two looks',
    ],
    [
      { leaderElectRenewDeadline: '20s' },
      'leaderElectRenewDeadline = 20000 (from --leader-elect-renew-deadline): must be shorter than --leader-elect-lease-duration (15s)',
    ],
    [
      { leaderElectRetryPeriod: '10s' },
      'leaderElectRetryPeriod = 10000 (from --leader-elect-retry-period): must be shorter than --leader-elect-renew-deadline (10s)',
    ],
  ])('refuses %j, naming the option and its value', (flags, expected) => {
    const found = problems(flags);
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(expected);
  });

  it('refuses an unknown key in a --config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ecm-config-'));
    try {
      const file = join(dir, 'ecm.yaml');
      writeFileSync(file, 'mode: cooperative\nnodeMonitorGrace: 40s\n');
      expect(() => loadConfig(EcmConfigSchema, { file })).toThrow(
        /unknown option "nodeMonitorGrace"/,
      );
      writeFileSync(file, 'mode: cooperative\nnodeMonitorGracePeriod: 40s\n');
      expect(loadConfig(EcmConfigSchema, { file }).nodeMonitorGracePeriod).toBe(40_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has a flag for every option and an option for every flag', () => {
    const program = new Command();
    registerEcmCommands(program);
    const ecm = program.commands.find((c) => c.name() === 'ecm');
    const flags = (ecm?.options ?? []).map((o) => o.attributeName()).filter((k) => k !== 'config');
    expect(flags.sort()).toEqual(Object.keys(EcmConfigSchema.shape).sort());
    // Names as kube-controller-manager spells them.
    expect(ecm?.options.map((o) => o.long)).toEqual(
      expect.arrayContaining([
        '--kubeconfig',
        '--mode',
        '--node-monitor-period',
        '--node-monitor-grace-period',
        '--node-startup-grace-period',
        '--node-eviction-rate',
        '--secondary-node-eviction-rate',
        '--unhealthy-zone-threshold',
        '--large-cluster-size-threshold',
        '--leader-elect',
      ]),
    );
  });
});
