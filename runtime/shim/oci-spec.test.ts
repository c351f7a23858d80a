import { describe, expect, it } from 'vitest';
import { containerSpecFromOci, execSpecFromOci, type OciSpec } from './oci-spec.ts';

/** A container's config.json as containerd 1.6's CRI writes it, cut to what matters here. */
function criSpec(overrides: { process?: object; resources?: object } = {}): OciSpec {
  return {
    process: {
      args: ['httpd', '-f'],
      cwd: '/srv',
      user: { uid: 1000, gid: 1000, additionalGids: [1000] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
      ...overrides.process,
    },
    hostname: 'web',
    linux: {
      namespaces: [{ type: 'network' }, { type: 'pid' }, { type: 'ipc' }, { type: 'mount' }],
      resources: overrides.resources ?? {
        cpu: { shares: 512, quota: 50_000, period: 100_000, cpus: '0', mems: '0' },
        memory: { limit: 64 << 20, swap: 64 << 20 },
      },
    },
  };
}

/** A host where no bind source is a mount point. */
const noMounts = (): undefined => undefined;

describe('containerSpecFromOci', () => {
  it('carries cwd, user, hostname, rlimits, no_new_privs and every cgroup limit CRI sets', () => {
    const spec = containerSpecFromOci('web', criSpec(), '/rootfs', noMounts);
    expect(spec).toMatchObject({
      cwd: '/srv',
      user: { uid: 1000, gid: 1000 },
      hostname: 'web',
      rlimits: [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 1024 }],
      noNewPrivileges: true,
      resources: {
        cpus: 0.5,
        cpuWeight: 20,
        cpusetCpus: '0',
        cpusetMems: '0',
        memoryBytes: 64 << 20,
        swapMaxBytes: 0,
      },
    });
  });

  it('reads the largest uint64 as no limit', () => {
    // 18446744073709551615 as JSON.parse hands it over.
    const process = JSON.parse(
      '{"args":["sh"],"rlimits":[{"type":"RLIMIT_CORE","hard":18446744073709551615,"soft":0}]}',
    ) as object;
    expect(execSpecFromOci('e1', process as never).rlimits).toEqual([
      { type: 'RLIMIT_CORE', soft: 0, hard: 'unlimited' },
    ]);
  });

  it("runs root with its image's groups (containerd lists alpine root's seven), which change nothing for root", () => {
    const spec = containerSpecFromOci(
      'web',
      criSpec({ process: { user: { uid: 0, gid: 0, additionalGids: [0, 1, 2, 3, 4, 6, 10] } } }),
      '/rootfs',
      noMounts,
    );
    expect(spec.user).toEqual({ uid: 0, gid: 0 });
  });

  it("serves emptyDirs and tmpfs mounts from the pod's disk, and other binds from the host", () => {
    const pod = '/var/lib/kubelet/pods/0d5c7a2e-1111-4222-8333-944455556666';
    const spec = containerSpecFromOci(
      'web',
      {
        ...criSpec(),
        mounts: [
          { destination: '/proc', type: 'proc', source: 'proc' },
          {
            destination: '/cache',
            type: 'bind',
            source: `${pod}/volumes/kubernetes.io~empty-dir/cache-1`,
            options: ['rbind', 'rprivate', 'rw'],
          },
          {
            destination: '/seen',
            type: 'bind',
            source: `${pod}/volumes/kubernetes.io~empty-dir/cache-1`,
            options: ['rbind', 'ro'],
          },
          {
            destination: '/etc/hosts',
            type: 'bind',
            source: '/var/lib/containerd/sandboxes/abc/hosts',
            options: ['rbind', 'rw'],
          },
          {
            destination: '/config',
            type: 'bind',
            source: `${pod}/volumes/kubernetes.io~configmap/config`,
            options: ['rbind', 'ro'],
          },
          { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid'] },
        ],
      },
      '/rootfs',
      noMounts,
    );
    expect(spec.volumes).toEqual([
      { podVolume: 'cache-1', containerPath: '/cache', readOnly: false },
      { podVolume: 'cache-1', containerPath: '/seen', readOnly: true },
      {
        hostPath: '/var/lib/containerd/sandboxes/abc/hosts',
        containerPath: '/etc/hosts',
        readOnly: false,
      },
      {
        hostPath: `${pod}/volumes/kubernetes.io~configmap/config`,
        containerPath: '/config',
        readOnly: true,
      },
      { podVolume: 'tmpfs-5', scope: 'container', containerPath: '/run', readOnly: false },
    ]);
  });

  it.each([
    [
      'supplementary groups beyond the primary one',
      { process: { user: { uid: 1000, gid: 1000, additionalGids: [1000, 10] } } },
      /^process\.user\.additionalGids: supplementary groups \(10\) are not supported/,
    ],
    [
      'an rlimit the guest cannot set',
      { process: { rlimits: [{ type: 'RLIMIT_RTTIME', hard: 1, soft: 1 }] } },
      /^process\.rlimits\[0\]: RLIMIT_RTTIME cannot be set in the guest/,
    ],
    [
      'a soft limit above the hard one',
      { process: { rlimits: [{ type: 'RLIMIT_NOFILE', hard: 10, soft: 20 }] } },
      /^process\.rlimits\[0\] \(RLIMIT_NOFILE\): soft limit 20 above hard limit 10$/,
    ],
    [
      'CPU shares out of range',
      { resources: { cpu: { shares: 1 } } },
      /^linux\.resources\.cpu\.shares: must be 0 \(unchanged\) or 2-262144$/,
    ],
  ])('refuses %s, naming the field', (_name, overrides, message) => {
    expect(() => containerSpecFromOci('web', criSpec(overrides), '/rootfs', noMounts)).toThrow(
      message,
    );
  });

  describe('a subPath of an emptyDir (kubelet binds a bind mount of the directory within)', () => {
    const pod = '/var/lib/kubelet/pods/0d5c7a2e-1111-4222-8333-944455556666';
    const subpathBind = `${pod}/volume-subpaths/cache/web/0`;
    const subPathSpec: OciSpec = {
      ...criSpec(),
      mounts: [
        {
          destination: '/etc/app',
          type: 'bind',
          source: subpathBind,
          options: ['rbind', 'ro'],
        },
      ],
    };
    const mountRoot = (root: string | undefined) => (path: string) =>
      path === subpathBind ? root : undefined;

    it('is the pod volume with that subPath', () => {
      const spec = containerSpecFromOci(
        'web',
        subPathSpec,
        '/rootfs',
        mountRoot(`${pod}/volumes/kubernetes.io~empty-dir/cache/conf/d`),
      );
      expect(spec.volumes).toEqual([
        { podVolume: 'cache', subPath: 'conf/d', containerPath: '/etc/app', readOnly: true },
      ]);
    });

    it('is the whole pod volume when the mount shows the emptyDir itself', () => {
      // /var/lib/kubelet its own file system: the root is within it.
      const root = '/pods/0d5c/volumes/kubernetes.io~empty-dir/cache';
      const spec = containerSpecFromOci('web', subPathSpec, '/rootfs', mountRoot(root));
      expect(spec.volumes).toEqual([
        { podVolume: 'cache', containerPath: '/etc/app', readOnly: true },
      ]);
    });

    it('stays a host path when the mount is of something else, or no mount at all', () => {
      for (const root of [`${pod}/volumes/kubernetes.io~configmap/config/app`, undefined])
        expect(
          containerSpecFromOci('web', subPathSpec, '/rootfs', mountRoot(root)).volumes,
        ).toEqual([{ hostPath: subpathBind, containerPath: '/etc/app', readOnly: true }]);
    });

    it('refuses a subPath the disk would not make, naming the mount', () => {
      const root = `${pod}/volumes/kubernetes.io~empty-dir/cache/my conf`;
      expect(() => containerSpecFromOci('web', subPathSpec, '/rootfs', mountRoot(root))).toThrow(
        /^mounts\[0\] \(bind at \/etc\/app\): subPath "my conf" of emptyDir cache .*must be a relative path/,
      );
    });
  });
});
