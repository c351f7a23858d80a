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

  it('takes a pod volume name only as one path segment on the disk', () => {
    const container = { id: 'c', rootfs: '/srv/rootfs', args: ['true'] };
    const withPodVolume = (podVolume: string): boolean =>
      containerSpecSchema.safeParse({
        ...container,
        volumes: [{ podVolume, containerPath: '/data' }],
      }).success;
    expect(withPodVolume('cache-1')).toBe(true);
    for (const name of ['..', '.', 'a/b', '../x', '', 'x'.repeat(129)])
      expect({ name, ok: withPodVolume(name) }).toEqual({ name, ok: false });
    // One or the other: a host path with a pod volume name is refused, not half-honoured.
    expect(
      containerSpecSchema.safeParse({
        ...container,
        volumes: [{ podVolume: 'cache', hostPath: '/srv/data', containerPath: '/data' }],
      }).success,
    ).toBe(false);
  });

  it('takes a pod volume subPath only as a relative path of safe segments within it', () => {
    const withSubPath = (subPath: string): boolean =>
      containerSpecSchema.safeParse({
        id: 'c',
        rootfs: '/srv/rootfs',
        args: ['true'],
        volumes: [{ podVolume: 'cache', subPath, containerPath: '/data' }],
      }).success;
    expect(withSubPath('conf')).toBe(true);
    expect(withSubPath('conf/d.1')).toBe(true);
    const refused = ['/etc', '..', 'a/../../b', 'a/./b', 'a//b', 'a/', '', 'a b', 'x/'.repeat(600)];
    for (const subPath of refused)
      expect({ subPath, ok: withSubPath(subPath) }).toEqual({ subPath, ok: false });
  });
});
