import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCommand } from '../process/run-command.ts';
import { POD_TAP_NAME, attachPodNetwork, detachPodNetwork } from './tap-endpoint.ts';

/** A real network namespace with a veth end configured the way CNI's bridge plugin leaves it. */
const ns = `edgebox-tap-${process.pid}`;
const netnsPath = `/run/netns/${ns}`;
const hostEnd = `ebt${process.pid % 100000}`;

async function inNs(...args: string[]): Promise<string> {
  return (await runCommand('ip', ['-n', ns, ...args])).stdout;
}

beforeEach(async () => {
  await runCommand('ip', ['netns', 'add', ns]);
  await runCommand('ip', [
    'link',
    'add',
    hostEnd,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    ns,
  ]);
  await inNs('link', 'set', 'eth0', 'mtu', '1400', 'up');
  await inNs('addr', 'add', '10.99.0.2/24', 'dev', 'eth0');
  await inNs('route', 'add', 'default', 'via', '10.99.0.1');
  // Routes CNI's IPAM adds besides the default one: through the gateway, and on the link.
  await inNs('route', 'add', '10.200.0.0/16', 'via', '10.99.0.1');
  await inNs('route', 'add', '10.201.0.7', 'dev', 'eth0');
});

afterEach(async () => {
  await runCommand('ip', ['link', 'del', hostEnd]).catch(() => undefined);
  await runCommand('ip', ['netns', 'del', ns]);
});

const VMM = { uid: 0x70010000, gid: 0x70010001 };

describe('pod network tap endpoint', () => {
  it('reads the pod interface and its routes, wires a tap owned by the VMM to it with mirred both ways, and removes every trace', async () => {
    const mac = JSON.parse(await inNs('-j', 'link', 'show', 'eth0'))[0].address as string;
    const network = await attachPodNetwork(netnsPath, VMM);
    expect(network).toMatchObject({
      interfaceName: 'eth0',
      tapName: POD_TAP_NAME,
      mac,
      address: '10.99.0.2/24',
      gateway: '10.99.0.1',
      mtu: 1400,
      routes: [{ dst: '10.200.0.0/16', via: '10.99.0.1' }, { dst: '10.201.0.7/32' }],
    });
    for (const [from, to] of [
      ['eth0', POD_TAP_NAME],
      [POD_TAP_NAME, 'eth0'],
    ]) {
      const filters = (
        await runCommand('tc', ['-n', ns, 'filter', 'show', 'dev', from!, 'ingress'])
      ).stdout;
      expect(filters).toMatch(new RegExp(`mirred \\(Egress Redirect to device ${to}\\)`));
    }
    expect(await inNs('link', 'show', POD_TAP_NAME)).toContain('mtu 1400');
    expect(await inNs('-d', 'link', 'show', POD_TAP_NAME)).toContain(
      `user ${VMM.uid} group ${VMM.gid}`,
    );

    await detachPodNetwork(network);
    await expect(inNs('link', 'show', POD_TAP_NAME)).rejects.toThrow(/does not exist/);
    expect(
      (await runCommand('tc', ['-n', ns, 'qdisc', 'show', 'dev', 'eth0'])).stdout,
    ).not.toContain('ingress');
    // The pod interface itself is CNI's and stays as it was.
    expect(await inNs('addr', 'show', 'eth0')).toContain('10.99.0.2/24');
  });

  it('refuses a namespace CNI never configured, leaving nothing behind', async () => {
    await inNs('addr', 'flush', 'dev', 'eth0');
    await expect(attachPodNetwork(netnsPath, VMM)).rejects.toThrow(
      /no interface with an IPv4 address/,
    );
    await expect(inNs('link', 'show', POD_TAP_NAME)).rejects.toThrow(/does not exist/);
  });

  it('cleans up a half-made attachment when the namespace is gone already', async () => {
    const network = await attachPodNetwork(netnsPath, VMM);
    await runCommand('ip', ['netns', 'del', ns]);
    await runCommand('ip', ['netns', 'add', ns]);
    await expect(detachPodNetwork(network)).resolves.toBeUndefined();
  });
});
