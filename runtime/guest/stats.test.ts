import { describe, expect, it } from 'vitest';
import { containerStats } from './stats.ts';

describe('containerStats', () => {
  it('leaves loopback out of the network figures: its traffic never leaves the VM', async () => {
    // This machine stands in for the guest: /sys/class/net, with its lo, is read the same way.
    const floor = { readBytes: 0, writeBytes: 0, readCalls: 0, writeCalls: 0 };
    const { stats } = await containerStats('/nonexistent-cgroup', floor);
    expect(stats.network.map((n) => n.name)).not.toContain('lo');
  });
});
