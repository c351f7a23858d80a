import { describe, expect, it } from 'vitest';
import { containerSpecSchema, sandboxConfigSchema } from './config.ts';

describe('sandbox and container specs', () => {
  it('takes only absolute host paths, which mount(8) cannot read as options', () => {
    const container = { id: 'c', rootfs: '/srv/rootfs', args: ['true'] };
    expect(containerSpecSchema.safeParse(container).success).toBe(true);
    expect(containerSpecSchema.safeParse({ ...container, rootfs: '--rbind' }).success).toBe(false);
    const volume = { hostPath: '-oremount', containerPath: '/data' };
    expect(containerSpecSchema.safeParse({ ...container, volumes: [volume] }).success).toBe(false);
    const image = { kernelPath: '/k', initramfsPath: '/i', runtimePath: '/r' };
    expect(sandboxConfigSchema.safeParse({ id: 's', image }).success).toBe(true);
    expect(
      sandboxConfigSchema.safeParse({ id: 's', image: { ...image, runtimePath: 'runtime' } })
        .success,
    ).toBe(false);
    expect(sandboxConfigSchema.safeParse({ id: 's', image, runRoot: 'run' }).success).toBe(false);
  });
});
