import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { PROBE_BOOT_ARG, PROBE_MARKER } from '../protocol/guest-layout.ts';
import type { Accelerator } from './hypervisor.ts';
import { QEMU_BINARY } from './qemu.ts';

export type AcceleratorChoice = Accelerator | 'auto';

const probeRecordSchema = z.object({
  bootId: z.string(),
  kernel: z.string(),
  kvmBoots: z.boolean(),
});

/**
 * Whether KVM can boot our kernel, found by trying: /dev/kvm can exist and
 * open fine yet be unable to run a stock kernel (a PVM host is like that), so
 * only a real boot says yes. The guest's /init, given PROBE_BOOT_ARG, prints a
 * marker and reboots at once; under working KVM that takes well under a
 * second. The answer is kept per host boot and kernel in the cache directory.
 */
export async function kvmBootsKernel(
  kernelPath: string,
  initramfsPath: string,
  cacheDir: string,
  timeoutMs = 5000,
): Promise<boolean> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return false;
  }
  const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
  const recordPath = join(cacheDir, 'kvm-probe.json');
  try {
    const record = probeRecordSchema.parse(JSON.parse(await readFile(recordPath, 'utf8')));
    if (record.bootId === bootId && record.kernel === kernelPath) return record.kvmBoots;
  } catch {
    // No record yet, or from another boot: probe.
  }
  const kvmBoots = await new Promise<boolean>((resolve) => {
    const qemu = spawn(
      QEMU_BINARY,
      [
        '-M',
        'microvm,x-option-roms=off',
        '-accel',
        'kvm',
        '-cpu',
        'host',
        '-m',
        '256M',
        '-nodefaults',
        '-no-user-config',
        '-display',
        'none',
        '-no-reboot',
        '-serial',
        'stdio',
        '-kernel',
        kernelPath,
        '-initrd',
        initramfsPath,
        '-append',
        `console=ttyS0 rdinit=/init panic=-1 quiet ${PROBE_BOOT_ARG}`,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    let output = '';
    let answered = false;
    const answer = (value: boolean): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      qemu.kill('SIGKILL');
      resolve(value);
    };
    const timer = setTimeout(() => answer(false), timeoutMs);
    qemu.stdout.on('data', (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4096);
      if (output.includes(PROBE_MARKER)) answer(true);
    });
    qemu.on('error', () => answer(false));
    qemu.on('exit', () => answer(output.includes(PROBE_MARKER)));
  });
  await mkdir(cacheDir, { recursive: true });
  await writeFile(recordPath, JSON.stringify({ bootId, kernel: kernelPath, kvmBoots }));
  return kvmBoots;
}

export async function chooseAccelerator(
  choice: AcceleratorChoice,
  image: { kernelPath: string; initramfsPath: string },
  cacheDir: string,
): Promise<Accelerator> {
  if (choice !== 'auto') return choice;
  return (await kvmBootsKernel(image.kernelPath, image.initramfsPath, cacheDir)) ? 'kvm' : 'tcg';
}
