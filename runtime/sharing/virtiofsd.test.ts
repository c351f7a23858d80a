import { describe, expect, it } from 'vitest';
import { userNamespaceCommand, virtiofsdArgs } from './virtiofsd.ts';

describe('virtiofsd command line', () => {
  it('sandboxes either virtiofsd, takes CAP_MKNOD from it and bounds its fds', () => {
    expect(
      virtiofsdArgs({ path: '/usr/libexec/virtiofsd', flavour: 'rust' }, '/s', '/v.sock'),
    ).toEqual([
      '--socket-path',
      '/v.sock',
      '--shared-dir',
      '/s',
      '--cache',
      'auto',
      '--sandbox',
      'namespace',
      '--modcaps=-mknod',
      '--rlimit-nofile=16384',
    ]);
    const c = virtiofsdArgs({ path: '/usr/lib/qemu/virtiofsd', flavour: 'c' }, '/s', '/v.sock');
    expect(c).toContain('modcaps=-mknod');
    expect(c).not.toContain('xattr');
    expect(c.join(' ')).not.toMatch(/sandbox=chroot/);
    expect(virtiofsdArgs({ path: '/v', flavour: 'c' }, '/s', '/v.sock', 512)).toContain(
      '--rlimit-nofile=512',
    );
  });

  it("runs it as the guest's root in a user namespace mapping the guest's ids to the range, under the setid filter", () => {
    const { command, args } = userNamespaceCommand(
      { hostBase: 300000, count: 65536 },
      '/run/x/lock',
      '/usr/lib/qemu/virtiofsd',
      ['-o', 'source=/s'],
    );
    expect(command).toBe('unshare');
    expect(args).toEqual(
      expect.arrayContaining([
        '--user',
        '--map-users=300000,0,65536',
        '--map-groups=300000,0,65536',
        '--setuid=0',
      ]),
    );
    expect(args.slice(-3)).toEqual(['/usr/lib/qemu/virtiofsd', '-o', 'source=/s']);
    // Under the setuid/setgid filter, loaded by bubblewrap from fd 3.
    expect(args.join(' ')).toMatch(/exec setpriv --pdeathsig=KILL -- bwrap .*--seccomp 3 -- "\$@"/);
  });
});
