import type { ContainerStats } from '../protocol/messages.ts';
import { codecFor, type Any } from './codec.ts';

const metricsCodec = codecFor('io.containerd.cgroups.v1.Metrics');
export const METRICS_TYPE_URL = 'io.containerd.cgroups.v1.Metrics';

/**
 * The guest's view of a container (its cgroup v2 in the VM, the VM's
 * network interfaces) as containerd's cgroup v1 Metrics, the type
 * containerd 1.6/1.7's CRI reads on a cgroup v1 host: CPU in nanoseconds,
 * memory usage/limit/peak, pids, block I/O per device and the pod's
 * interfaces. Reads and writes that never touch a block device (the guest's
 * files live on virtio-fs) are not reported as block I/O.
 */
export function containerMetrics(stats: ContainerStats): Any {
  const value = metricsCodec.encode({
    pids: { current: stats.pids.current, limit: stats.pids.limit ?? 0 },
    cpu: {
      usage: {
        total: stats.cpu.usageMicros * 1000,
        user: stats.cpu.userMicros * 1000,
        kernel: stats.cpu.systemMicros * 1000,
      },
    },
    memory: {
      usage: {
        usage: stats.memory.currentBytes,
        limit: stats.memory.limitBytes ?? 0,
        max: stats.memory.peakBytes ?? 0,
      },
    },
    blkio: {
      io_service_bytes_recursive: stats.io.block.flatMap((d) => [
        { op: 'Read', device: d.device, value: d.readBytes },
        { op: 'Write', device: d.device, value: d.writeBytes },
      ]),
      io_serviced_recursive: stats.io.block.flatMap((d) => [
        { op: 'Read', device: d.device, value: d.readOps },
        { op: 'Write', device: d.device, value: d.writeOps },
      ]),
    },
    network: stats.network.map((n) => ({
      name: n.name,
      rx_bytes: n.rxBytes,
      tx_bytes: n.txBytes,
      rx_packets: n.rxPackets,
      tx_packets: n.txPackets,
    })),
  });
  return { type_url: METRICS_TYPE_URL, value };
}
