import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerStats } from '../protocol/messages.ts';
import { cgroupPids } from './cgroup.ts';

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Parses "key value" lines (cpu.stat, /proc/<pid>/io). */
export function parseKeyValues(text: string, separator = ' '): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const at = line.indexOf(separator);
    if (at <= 0) continue;
    const value = Number(line.slice(at + separator.length).trim());
    if (Number.isFinite(value)) out.set(line.slice(0, at).trim(), value);
  }
  return out;
}

function limit(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  return trimmed === 'max' || trimmed === '' ? undefined : Number(trimmed);
}

/** io.stat: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0" per device. */
export function parseIoStat(text: string): ContainerStats['io']['block'] {
  const devices: ContainerStats['io']['block'] = [];
  for (const line of text.split('\n')) {
    const [device, ...fields] = line.trim().split(/\s+/);
    if (!device) continue;
    const values = new Map(fields.map((f) => f.split('=') as [string, string]));
    devices.push({
      device,
      readBytes: Number(values.get('rbytes') ?? 0),
      writeBytes: Number(values.get('wbytes') ?? 0),
      readOps: Number(values.get('rios') ?? 0),
      writeOps: Number(values.get('wios') ?? 0),
    });
  }
  return devices;
}

async function networkStats(): Promise<ContainerStats['network']> {
  const out: ContainerStats['network'] = [];
  // The pod's interfaces: loopback traffic never leaves the VM, so it is no network figure.
  const names = (await readdir('/sys/class/net').catch(() => []))
    .filter((name) => name !== 'lo')
    .sort();
  for (const name of names) {
    const read = async (counter: string): Promise<number> =>
      Number((await readText(join('/sys/class/net', name, 'statistics', counter)))?.trim() ?? 0);
    out.push({
      name,
      rxBytes: await read('rx_bytes'),
      txBytes: await read('tx_bytes'),
      rxPackets: await read('rx_packets'),
      txPackets: await read('tx_packets'),
    });
  }
  return out;
}

export type FsCounters = ContainerStats['io']['fs'];

/**
 * Read/write bytes and calls of the group's live processes. A process's
 * counters include the children it reaped, so the group's history stays in
 * the sum as long as the container's PID 1 (or its parent) lives.
 */
export async function processIoCounters(pids: readonly number[]): Promise<FsCounters> {
  const total: FsCounters = { readBytes: 0, writeBytes: 0, readCalls: 0, writeCalls: 0 };
  for (const pid of pids) {
    const text = await readText(`/proc/${pid}/io`);
    if (!text) continue;
    const io = parseKeyValues(text, ':');
    total.readBytes += io.get('rchar') ?? 0;
    total.writeBytes += io.get('wchar') ?? 0;
    total.readCalls += io.get('syscr') ?? 0;
    total.writeCalls += io.get('syscw') ?? 0;
  }
  return total;
}

export async function containerStats(
  dir: string,
  fsFloor: FsCounters,
): Promise<{ stats: ContainerStats; fs: FsCounters }> {
  const cpu = parseKeyValues((await readText(join(dir, 'cpu.stat'))) ?? '');
  const sampled = await processIoCounters(await cgroupPids(dir));
  // Counters only grow; when the processes that carried them are gone, keep the last high.
  const fs: FsCounters = {
    readBytes: Math.max(sampled.readBytes, fsFloor.readBytes),
    writeBytes: Math.max(sampled.writeBytes, fsFloor.writeBytes),
    readCalls: Math.max(sampled.readCalls, fsFloor.readCalls),
    writeCalls: Math.max(sampled.writeCalls, fsFloor.writeCalls),
  };
  const stats: ContainerStats = {
    cpu: {
      usageMicros: cpu.get('usage_usec') ?? 0,
      userMicros: cpu.get('user_usec') ?? 0,
      systemMicros: cpu.get('system_usec') ?? 0,
    },
    memory: {
      currentBytes: Number((await readText(join(dir, 'memory.current')))?.trim() ?? 0),
      peakBytes: limit(await readText(join(dir, 'memory.peak'))),
      limitBytes: limit(await readText(join(dir, 'memory.max'))),
    },
    pids: {
      current: Number((await readText(join(dir, 'pids.current')))?.trim() ?? 0),
      limit: limit(await readText(join(dir, 'pids.max'))),
    },
    network: await networkStats(),
    io: { block: parseIoStat((await readText(join(dir, 'io.stat'))) ?? ''), fs },
  };
  return { stats, fs };
}
