import { describe, expect, it } from 'vitest';
import { cpuWeightFromShares, resourceLimitsFromUpdate } from './resource-update.ts';

/** Update's resources as containerd marshals them: OCI LinuxResources JSON in an Any. */
function any(
  json: string,
  typeUrl = 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources',
) {
  return { type_url: typeUrl, value: Buffer.from(json) };
}

describe('resourceLimitsFromUpdate', () => {
  it('maps CPU, memory and pids limits; -1 lifts a limit, 0 leaves it', () => {
    const resources = any(
      JSON.stringify({
        cpu: { shares: 1024, quota: 50_000, period: 200_000 },
        memory: { limit: 33_554_432, swap: 0 },
        pids: { limit: -1 },
        devices: [{ allow: false, access: 'rwm' }],
      }),
    );
    expect(resourceLimitsFromUpdate(resources)).toEqual({
      cpuQuotaMicros: 50_000,
      cpuPeriodMicros: 200_000,
      cpuWeight: 39,
      memoryMaxBytes: 33_554_432,
      pidsMax: 'max',
    });
    expect(
      resourceLimitsFromUpdate(any(JSON.stringify({ cpu: { quota: 0, period: 100_000 } }))),
    ).toEqual({});
  });

  it('converts CPU shares to cpu.weight as runc does, over the whole range', () => {
    expect([2, 1024, 2048, 262_144].map(cpuWeightFromShares)).toEqual([1, 39, 79, 10_000]);
  });

  it('passes cpusets through and turns memory+swap into swap beyond the memory limit', () => {
    const update = (json: object) => resourceLimitsFromUpdate(any(JSON.stringify(json)));
    expect(update({ cpu: { cpus: '0-1,3', mems: '0' } })).toEqual({
      cpusetCpus: '0-1,3',
      cpusetMems: '0',
    });
    // kubelet's swap = memory (no swap), a larger figure, and -1 (no limit on swap).
    expect(update({ memory: { limit: 64 << 20, swap: 64 << 20 } })).toEqual({
      memoryMaxBytes: 64 << 20,
      swapMaxBytes: 0,
    });
    expect(update({ memory: { limit: 64 << 20, swap: 96 << 20 } })).toMatchObject({
      swapMaxBytes: 32 << 20,
    });
    expect(update({ memory: { swap: -1 } })).toEqual({ swapMaxBytes: 'max' });
  });

  it.each([
    [
      'CPU shares out of range',
      any('{"cpu":{"shares":1}}'),
      /^resources\.cpu\.shares: must be 0 \(unchanged\) or 2-262144$/,
    ],
    [
      'a cpuset that is no list',
      any('{"cpu":{"cpus":"all"}}'),
      /^resources\.cpu\.cpus: must be a list/,
    ],
    [
      'swap below the memory limit',
      any('{"memory":{"limit":1048576,"swap":1024}}'),
      /^resources\.memory\.swap: 1024 is below memory\.limit 1048576/,
    ],
    [
      'swap without a memory limit',
      any('{"memory":{"swap":1048576}}'),
      /^resources\.memory\.swap: set without a memory\.limit$/,
    ],
    [
      'a negative memory limit',
      any('{"memory":{"limit":-5}}'),
      /^resources\.memory\.limit: must be -1/,
    ],
    [
      'a fractional CPU quota',
      any('{"cpu":{"quota":1.5}}'),
      /^resources\.cpu\.quota: must be a whole/,
    ],
    ['a negative period', any('{"cpu":{"period":-1}}'), /^resources\.cpu\.period: must be 0/],
    ['text that is not JSON', any('memory=32M'), /^resources: not LinuxResources JSON/],
    [
      'another type',
      any('{}', 'types.containerd.io/opencontainers/runtime-spec/1/Spec'),
      /not an OCI LinuxResources/,
    ],
    ['no resources at all', null, /^resources: missing$/],
  ])('refuses %s, naming the field', (_name, resources, message) => {
    expect(() => resourceLimitsFromUpdate(resources)).toThrow(message);
  });
});
