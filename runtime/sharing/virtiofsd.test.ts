import { describe, expect, it } from 'vitest';
import { virtiofsdArgs } from './virtiofsd.ts';

describe('virtiofsd command line', () => {
  it('sandboxes either virtiofsd and takes CAP_MKNOD from it', () => {
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
    ]);
    const c = virtiofsdArgs({ path: '/usr/lib/qemu/virtiofsd', flavour: 'c' }, '/s', '/v.sock');
    expect(c).toContain('modcaps=-mknod');
    expect(c).not.toContain('xattr');
    expect(c.join(' ')).not.toMatch(/sandbox=chroot/);
  });
});
