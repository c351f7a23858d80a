import { readFile } from 'node:fs/promises';

/**
 * The host TSC frequency in kHz. Under TCG the guest cannot calibrate its TSC
 * against emulated timers in reasonable time, so it is told the value with
 * tsc_early_khz. /proc/cpuinfo's "cpu MHz" on a constant-TSC host is the TSC
 * rate as the kernel measured it.
 */
export async function hostTscKhz(cpuinfoPath = '/proc/cpuinfo'): Promise<number> {
  const text = await readFile(cpuinfoPath, 'utf8');
  const mhz = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(text)?.[1];
  if (!mhz) throw new Error(`cannot find the CPU frequency in ${cpuinfoPath}`);
  return Math.round(Number(mhz) * 1000);
}
