import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { spawn } from 'node:child_process';

/**
 * Modules the guest needs, each after what it depends on: virtio transports
 * (mmio for microvm, pci for q35/cloud-hypervisor), virtio-fs, virtio-serial,
 * virtio-net and virtio-vsock.
 */
export const GUEST_MODULE_ROOTS = [
  'virtio_mmio',
  'virtio_pci',
  'virtiofs',
  'virtio_console',
  'virtio_net',
  'vmw_vsock_virtio_transport',
];

export interface GuestModule {
  name: string;
  /** Path inside the guest image, relative to /lib/modules. */
  file: string;
  data: Buffer;
}

const MODULE_SUFFIX = /\.ko(\.xz|\.zst)?$/;

function canonicalName(name: string): string {
  return name.replaceAll('-', '_');
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else if (MODULE_SUFFIX.test(entry.name)) out.push(path);
  }
  return out;
}

function decompressXz(path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('xz', ['-dc', path], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', (e) => reject(new Error(`cannot run xz to unpack ${path}: ${e.message}`)));
    child.on('close', (code) =>
      code === 0
        ? resolve(Buffer.concat(out))
        : reject(new Error(`xz -dc ${path} failed with exit code ${code}: ${err.trim()}`)),
    );
  });
}

/** Reads a module and decompresses it, since busybox insmod loads plain .ko files only. */
async function readModule(path: string): Promise<Buffer> {
  if (path.endsWith('.zst')) return zstdDecompressSync(await readFile(path));
  if (path.endsWith('.xz')) return decompressXz(path);
  return readFile(path);
}

/** The `depends=` field of a module's .modinfo section (what depmod reads too). */
export function moduleDependencies(module: Buffer): string[] {
  const marker = Buffer.from('\0depends=');
  const at = module.indexOf(marker);
  if (at < 0) return [];
  const start = at + marker.length;
  const end = module.indexOf(0, start);
  const value = module.subarray(start, end < 0 ? undefined : end).toString('utf8');
  return value === '' ? [] : value.split(',').map(canonicalName);
}

/**
 * Resolves `roots` and their dependencies inside an unpacked kernel package's
 * /lib/modules/<version> and returns them in load order (dependencies first).
 * Dependencies come from each module's own .modinfo, so no depmod run is
 * needed; modules built into the kernel (modules.builtin) are skipped.
 */
export async function resolveGuestModules(
  moduleDir: string,
  roots: readonly string[] = GUEST_MODULE_ROOTS,
): Promise<GuestModule[]> {
  const files = new Map<string, string>();
  for (const path of await walk(join(moduleDir, 'kernel'))) {
    const base = path.slice(path.lastIndexOf('/') + 1).replace(MODULE_SUFFIX, '');
    files.set(canonicalName(base), path);
  }
  const builtin = new Set<string>();
  try {
    for (const line of (await readFile(join(moduleDir, 'modules.builtin'), 'utf8')).split('\n')) {
      const base = line.slice(line.lastIndexOf('/') + 1).replace(MODULE_SUFFIX, '');
      if (base) builtin.add(canonicalName(base));
    }
  } catch {
    // Older packages ship no modules.builtin; then only loadable modules are known.
  }
  const ordered: GuestModule[] = [];
  const visiting = new Set<string>();
  const done = new Set<string>();
  const visit = async (name: string, wantedBy: string): Promise<void> => {
    if (done.has(name) || builtin.has(name)) return;
    if (visiting.has(name)) throw new Error(`kernel modules: dependency cycle through ${name}`);
    const path = files.get(name);
    if (!path) {
      throw new Error(`kernel module ${name} (needed by ${wantedBy}) is not in ${moduleDir}`);
    }
    visiting.add(name);
    const data = await readModule(path);
    for (const dep of moduleDependencies(data)) await visit(dep, name);
    visiting.delete(name);
    done.add(name);
    ordered.push({ name, file: relative(moduleDir, path).replace(/\.(xz|zst)$/, ''), data });
  };
  for (const root of roots) await visit(canonicalName(root), 'the guest image');
  return ordered;
}
