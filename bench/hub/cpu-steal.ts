import { readFileSync } from 'node:fs';

/** The aggregate `cpu` line of /proc/stat: ticks by state (user nice system idle iowait irq softirq steal …). */
function cpuTicks(): number[] | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    if (!line.startsWith('cpu ')) return undefined;
    return line.trim().split(/\s+/).slice(1, 9).map(Number);
  } catch {
    return undefined;
  }
}

/**
 * Starts measuring the CPU time the hypervisor took from this virtual
 * machine (steal): on a shared host it slows every process here alike, and
 * skews a CPU-bound figure far more than the load average shows. The
 * returned function gives the stolen share since the start, as text.
 */
export function stealMeter(): () => string {
  const before = cpuTicks();
  return () => {
    const after = cpuTicks();
    if (before === undefined || after === undefined) return 'CPU steal unknown';
    const delta = after.map((v, i) => v - (before[i] ?? 0));
    const total = delta.reduce((a, b) => a + b, 0);
    const steal = delta[7] ?? 0;
    return total > 0
      ? `${((100 * steal) / total).toFixed(0)}% of CPU time stolen by the hypervisor`
      : 'CPU steal unknown';
  };
}
