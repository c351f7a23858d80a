import { describe, expect, it } from 'vitest';
import { resourceLimitsFromUpdate } from './resource-update.ts';

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
      memoryMaxBytes: 33_554_432,
      pidsMax: 'max',
    });
    expect(
      resourceLimitsFromUpdate(any(JSON.stringify({ cpu: { quota: 0, period: 100_000 } }))),
    ).toEqual({});
  });

  it.each([
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
