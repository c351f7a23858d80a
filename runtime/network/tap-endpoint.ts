import { z } from 'zod';
import { runCommand } from '../process/run-command.ts';

/**
 * A pod's network as the VM gets it (Kata's tcfilter model): in the pod's
 * network namespace, which CNI set up, a tap beside the pod interface and
 * tc u32 filters with `action mirred` redirecting every frame from one to
 * the other, both ways. QEMU runs in that namespace on the tap; the guest's
 * eth0 takes the pod interface's MAC, address, gateway, routes and MTU, so the pod
 * IP CNI handed out answers from inside the VM.
 */
export interface PodNetwork {
  netnsPath: string;
  /** The CNI interface (eth0) and the tap the VM uses. */
  interfaceName: string;
  tapName: string;
  mac: string;
  /** IPv4 address with prefix length, e.g. 10.88.0.5/16. */
  address: string;
  gateway: string | undefined;
  mtu: number;
  /** CNI's routes besides the default one and the kernel's own subnet route. */
  routes: { dst: string; via?: string }[];
}

export const POD_TAP_NAME = 'tap0_edgebox';

const ipAddrSchema = z.array(
  z.object({
    ifname: z.string(),
    address: z.string().optional(),
    mtu: z.number(),
    link_type: z.string().optional(),
    addr_info: z.array(z.object({ family: z.string(), local: z.string(), prefixlen: z.number() })),
  }),
);
const ipRouteSchema = z.array(
  z.object({
    dst: z.string(),
    gateway: z.string().optional(),
    dev: z.string().optional(),
    protocol: z.string().optional(),
  }),
);

function inNetns(netnsPath: string, command: string, args: string[]): Promise<{ stdout: string }> {
  return runCommand('nsenter', [`--net=${netnsPath}`, '--', command, ...args]);
}

/**
 * Reads the pod interface CNI configured and wires a tap to it, the tap owned
 * by `owner` (the VMM's unprivileged ids), so QEMU opens it without
 * CAP_NET_ADMIN. Undone by detachPodNetwork.
 */
export async function attachPodNetwork(
  netnsPath: string,
  owner: { uid: number; gid: number },
): Promise<PodNetwork> {
  const links = ipAddrSchema.parse(
    JSON.parse((await inNetns(netnsPath, 'ip', ['-j', 'addr', 'show'])).stdout),
  );
  const pod = links.find(
    (l) =>
      l.ifname !== 'lo' &&
      l.ifname !== POD_TAP_NAME &&
      l.addr_info.some((a) => a.family === 'inet'),
  );
  if (!pod?.address)
    throw new Error(
      `network namespace ${netnsPath}: no interface with an IPv4 address (did CNI run?)`,
    );
  const inet = pod.addr_info.find((a) => a.family === 'inet')!;
  const routes = ipRouteSchema.parse(
    JSON.parse((await inNetns(netnsPath, 'ip', ['-j', '-4', 'route', 'show'])).stdout),
  );
  const network: PodNetwork = {
    netnsPath,
    interfaceName: pod.ifname,
    tapName: POD_TAP_NAME,
    mac: pod.address,
    address: `${inet.local}/${inet.prefixlen}`,
    gateway: routes.find((r) => r.dst === 'default')?.gateway,
    mtu: pod.mtu,
    routes: routes
      .filter((r) => r.dst !== 'default' && r.protocol !== 'kernel' && r.dev === pod.ifname)
      .map((r) => ({
        // A host route comes without its /32.
        dst: r.dst.includes('/') ? r.dst : `${r.dst}/32`,
        ...(r.gateway ? { via: r.gateway } : {}),
      })),
  };
  try {
    await inNetns(netnsPath, 'ip', [
      'tuntap',
      'add',
      'dev',
      POD_TAP_NAME,
      'mode',
      'tap',
      'user',
      String(owner.uid),
      'group',
      String(owner.gid),
    ]);
    await inNetns(netnsPath, 'ip', ['link', 'set', POD_TAP_NAME, 'mtu', String(pod.mtu), 'up']);
    for (const [from, to] of [
      [pod.ifname, POD_TAP_NAME],
      [POD_TAP_NAME, pod.ifname],
    ] as const) {
      await inNetns(netnsPath, 'tc', ['qdisc', 'add', 'dev', from, 'ingress']);
      await inNetns(netnsPath, 'tc', [
        'filter',
        'add',
        'dev',
        from,
        'parent',
        'ffff:',
        'protocol',
        'all',
        'u32',
        'match',
        'u8',
        '0',
        '0',
        'action',
        'mirred',
        'egress',
        'redirect',
        'dev',
        to,
      ]);
    }
  } catch (err) {
    await detachPodNetwork(network);
    throw new Error(
      `cannot attach the VM to the pod network in ${netnsPath}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return network;
}

/**
 * Removes the filters, the ingress qdiscs and the tap. A namespace already
 * gone (CNI tore it down) took them with it, which is no error.
 */
export async function detachPodNetwork(network: PodNetwork): Promise<void> {
  const errors: string[] = [];
  for (const dev of [network.interfaceName, network.tapName]) {
    await inNetns(network.netnsPath, 'tc', ['qdisc', 'del', 'dev', dev, 'ingress']).catch(
      (err: Error) => {
        if (
          !/No such file|Cannot find device|Invalid handle|Cannot open|No such device/i.test(
            err.message,
          )
        )
          errors.push(err.message);
      },
    );
  }
  await inNetns(network.netnsPath, 'ip', ['link', 'del', network.tapName]).catch((err: Error) => {
    if (!/Cannot find device|No such file|Cannot open/i.test(err.message)) errors.push(err.message);
  });
  if (errors.length > 0)
    throw new Error(`pod network cleanup in ${network.netnsPath}: ${errors.join('; ')}`);
}
