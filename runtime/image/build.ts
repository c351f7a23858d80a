import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { zstdCompressSync, constants as zlibConstants } from 'node:zlib';
import { z } from 'zod';
import { defaultCacheDir } from '../paths.ts';
import { runCommand } from '../process/run-command.ts';
import { agentSourceFingerprint, bundleAgent } from './agent-bundle.ts';
import { writeCpio, type CpioEntry } from './cpio.ts';
import {
  downloadPackage,
  extractPackage,
  guestPackage,
  kernelPackages,
  unpackedPackage,
  type DebianPackage,
} from './debian-packages.ts';
import { findGuestNode, sharedLibraries, writeStrippedBinary } from './guest-node.ts';
import {
  DEBIAN_SOCAT_PATH,
  GUEST_RUNTIME_DIR,
  GUEST_SOCAT_LIBRARY_DIR,
  GUEST_SOCAT_PATH,
} from '../protocol/guest-layout.ts';
import { GUEST_AGENT_PATH, MODULE_LOAD_ORDER_PATH, guestInitScript } from './init-script.ts';
import { GUEST_MODULE_ROOTS, resolveGuestModules } from './kernel-modules.ts';
import { extractPvhKernel } from './kernel-image.ts';
import { hashFiles } from './file-hash.ts';
import { silentProgress, type Progress } from './progress.ts';

/** Bump when the image layout changes in a way the inputs below do not capture. */
const IMAGE_FORMAT = 4;
/** socat and the libraries only it needs, in the runtime directory (see GUEST_SOCAT_PATH). */
const SOCAT_FILE = join(GUEST_RUNTIME_DIR, basename(GUEST_SOCAT_PATH));
const SOCAT_LIBRARY_DIR = join(GUEST_RUNTIME_DIR, basename(GUEST_SOCAT_LIBRARY_DIR));
const ZSTD_LEVEL = 6;
export const KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';
/** The guest end of the vsock channel (Node has no AF_VSOCK); in every image, as either channel may be used. */
export const SOCAT_PACKAGE = 'socat';
export const BUILD_STEPS = 8;

export const guestImageManifestSchema = z.object({
  format: z.literal(IMAGE_FORMAT),
  hash: z.string(),
  kernelVersion: z.string(),
  packages: z.array(z.object({ name: z.string(), version: z.string() })),
  /** bzImage as the package ships it; PVH-capable ELF extracted from it, when that worked. */
  kernel: z.string(),
  kernelElf: z.string().optional(),
  initramfs: z.string(),
  /** Directory (relative) shared read-only into each sandbox: the Node binary. */
  runtimeDir: z.string(),
  modules: z.array(z.string()),
  initramfsBytes: z.number(),
});
export type GuestImageManifest = z.infer<typeof guestImageManifestSchema>;

export interface GuestImage {
  dir: string;
  manifest: GuestImageManifest;
  /** Host directory the sandbox shares read-only with the guest at GUEST_RUNTIME_DIR. */
  runtimePath: string;
  /** The kernel to boot: the PVH ELF when available (faster to start), else the bzImage. */
  kernelPath: string;
  initramfsPath: string;
}

export interface BuildGuestImageOptions {
  cacheDir?: string;
  /** Also copy the kernel, initramfs and manifest here. */
  out?: string;
  /** false: build afresh into `out` only, neither reading nor writing the image cache. */
  useCache?: boolean;
  progress?: Progress;
}

function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

async function findBusybox(): Promise<string> {
  for (const path of ['/usr/bin/busybox', '/bin/busybox']) {
    if (!existsSync(path)) continue;
    const ldd = await runCommand('ldd', [path]).catch((err: Error) => ({ stdout: err.message }));
    if (/not a dynamic executable|statically linked/.test(ldd.stdout)) return path;
  }
  throw new Error('no static busybox found (install the Debian package busybox-static)');
}

function imageFromDir(dir: string, manifest: GuestImageManifest): GuestImage {
  return {
    dir,
    manifest,
    kernelPath: join(dir, manifest.kernelElf ?? manifest.kernel),
    initramfsPath: join(dir, manifest.initramfs),
    runtimePath: join(dir, manifest.runtimeDir),
  };
}

/**
 * A node's prebuilt image (`image build --out DIR`, or the one the Debian
 * package ships): what the shim and `sandbox run --image` start from, with
 * nothing built or fetched at start. A missing or unreadable one is an error
 * that says how to make it.
 */
export async function loadPrebuiltGuestImage(dir: string): Promise<GuestImage> {
  try {
    return await loadGuestImage(dir);
  } catch (err) {
    throw new Error(
      `no edgebox guest image at ${dir} (${(err as Error).message}); build it once on this node with \`edgebox sandbox image build --out ${dir}\``,
      { cause: err },
    );
  }
}

/** Loads a built image from a directory (`image build --out DIR` or a cache entry). */
export async function loadGuestImage(dir: string): Promise<GuestImage> {
  const manifest = guestImageManifestSchema.parse(
    JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')),
  );
  return imageFromDir(dir, manifest);
}

/**
 * Builds (or finds in the cache) the guest kernel and initramfs: the Debian
 * cloud kernel, its virtio modules in load order, static busybox, the Node
 * runtime with the libraries it links, /init and the agent bundle. The cache
 * key is a hash of every input, and the archive is reproducible, so the same
 * inputs give the same bytes on any machine.
 */
export async function buildGuestImage(options: BuildGuestImageOptions = {}): Promise<GuestImage> {
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const progress = options.progress ?? silentProgress();
  const useCache = options.useCache ?? true;
  await mkdir(join(cacheDir, 'debs'), { recursive: true });

  progress.step('resolving inputs');
  const packages = await kernelPackages(KERNEL_METAPACKAGE, cacheDir);
  const busybox = await findBusybox();
  const nodeBinary = await findGuestNode();
  const socatPackage = await guestPackage(SOCAT_PACKAGE, cacheDir);
  const socatBinary = join(await unpackedPackage(socatPackage, cacheDir), DEBIAN_SOCAT_PATH);
  // The host resolves the libraries of the Debian socat; the host runs the same release.
  // Those Node also needs are in the initramfs already; the rest go on the share with socat.
  // (Two ldd runs on every `sandbox run`: side by side.)
  const [libraries, socatNeeds] = await Promise.all([
    sharedLibraries(nodeBinary),
    sharedLibraries(socatBinary).catch((err: Error) => {
      throw new Error(
        `the guest's socat needs libraries this host lacks (install the Debian package socat): ${err.message}`,
        { cause: err },
      );
    }),
  ]);
  const socatLibraries = socatNeeds.filter((l) => !libraries.some((n) => n.path === l.path));
  const agentFingerprint = await agentSourceFingerprint();
  const init = guestInitScript();
  const [busyboxHash = '', nodeHash = '', socatHash = '', ...libraryHashes] = await hashFiles(
    [busybox, nodeBinary, socatBinary, ...[...libraries, ...socatLibraries].map((l) => l.source)],
    cacheDir,
  );
  const hash = sha256(
    JSON.stringify({
      format: IMAGE_FORMAT,
      zstd: ZSTD_LEVEL,
      packages,
      modules: GUEST_MODULE_ROOTS,
      busybox: busyboxHash,
      node: nodeHash,
      socat: [socatPackage, socatHash],
      libraries: [...libraries, ...socatLibraries].map((l, i) => [l.path, libraryHashes[i]]),
      agent: agentFingerprint,
      init: sha256(init),
    }),
  ).slice(0, 32);
  const imageDir = join(cacheDir, 'images', hash);
  if (useCache && existsSync(join(imageDir, 'manifest.json'))) {
    const image = await loadGuestImage(imageDir);
    if (options.out) await copyImage(image, options.out);
    progress.done(`guest image ${hash} (cached) in ${imageDir}`);
    return options.out ? loadGuestImage(options.out) : image;
  }

  const work = join(cacheDir, `tmp-${randomBytes(6).toString('hex')}`);
  await mkdir(work, { recursive: true });
  try {
    progress.step(`downloading ${packages.map((p) => `${p.name} ${p.version}`).join(', ')}`);
    const debs: string[] = [];
    for (const pkg of packages) debs.push(await downloadPackage(pkg, join(cacheDir, 'debs')));

    progress.step('unpacking the kernel package');
    const tree = join(work, 'tree');
    for (const deb of debs) await extractPackage(deb, tree);
    const kernelVersion = await onlyKernelVersion(tree, packages);
    const output = join(work, 'image');
    await mkdir(output);
    await copyFile(join(tree, 'boot', `vmlinuz-${kernelVersion}`), join(output, 'vmlinuz'));
    const elf = extractPvhKernel(await readFile(join(output, 'vmlinuz')));
    if (elf) await writeFile(join(output, 'vmlinux'), elf);

    progress.step('resolving kernel modules');
    const modules = await resolveGuestModules(join(tree, 'lib', 'modules', kernelVersion));

    progress.step('stripping the Node runtime');
    // Node stays out of the initramfs: at about 110 MB, unpacking it would cost
    // seconds of every emulated boot. The guest runs it from the share instead
    // (a read-only bind mount), paging in only what it touches.
    await mkdir(join(output, GUEST_RUNTIME_DIR));
    await writeStrippedBinary(nodeBinary, join(output, GUEST_RUNTIME_DIR, 'node'));
    await copyFile(socatBinary, join(output, SOCAT_FILE));
    await chmod(join(output, SOCAT_FILE), 0o755);
    await mkdir(join(output, SOCAT_LIBRARY_DIR));
    for (const library of socatLibraries) {
      await copyFile(library.source, join(output, SOCAT_LIBRARY_DIR, basename(library.path)));
    }

    progress.step('writing the initramfs archive');
    const agent = await bundleAgent();
    const busyboxData = await readFile(busybox);
    const libraryData = await Promise.all(libraries.map((l) => readFile(l.source)));
    const { stdout: appletList } = await runCommand(busybox, ['--list']);
    const entries: CpioEntry[] = [
      ...['bin', 'dev', 'etc', 'proc', 'sys', 'run', 'tmp', 'root', 'lib/modules', 'agent'].map(
        (path) => ({ type: 'dir' as const, path, mode: path === 'tmp' ? 0o1777 : 0o755 }),
      ),
      { type: 'chardev', path: 'dev/console', mode: 0o600, major: 5, minor: 1 },
      { type: 'chardev', path: 'dev/null', mode: 0o666, major: 1, minor: 3 },
      { type: 'file', path: 'bin/busybox', mode: 0o755, data: busyboxData },
      ...appletList
        .split('\n')
        .filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== 'busybox')
        .map((applet) => ({ type: 'symlink' as const, path: `bin/${applet}`, target: 'busybox' })),
      ...libraries.map((l, i) => ({
        type: 'file' as const,
        path: l.path,
        mode: 0o755,
        data: libraryData[i] ?? new Uint8Array(),
      })),
      { type: 'file', path: 'init', mode: 0o755, data: Buffer.from(init) },
      { type: 'file', path: GUEST_AGENT_PATH, mode: 0o644, data: agent },
      {
        type: 'file',
        path: MODULE_LOAD_ORDER_PATH,
        mode: 0o644,
        data: Buffer.from(modules.map((m) => `${m.file}\n`).join('')),
      },
      ...modules.map((m) => ({
        type: 'file' as const,
        path: `lib/modules/${m.file}`,
        mode: 0o644,
        data: m.data,
      })),
      {
        type: 'file',
        path: 'etc/passwd',
        mode: 0o644,
        data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n'),
      },
      { type: 'file', path: 'etc/group', mode: 0o644, data: Buffer.from('root:x:0:\n') },
    ];
    const archive = writeCpio(entries);

    progress.step(`compressing ${(archive.length / 1048576).toFixed(0)} MiB with zstd`);
    const compressed = zstdCompressSync(archive, {
      params: { [zlibConstants.ZSTD_c_compressionLevel]: ZSTD_LEVEL },
    });
    await writeFile(join(output, 'initramfs.cpio.zst'), compressed);

    progress.step('recording the image');
    const manifest: GuestImageManifest = {
      format: IMAGE_FORMAT,
      hash,
      kernelVersion,
      packages: [...packages, socatPackage],
      kernel: 'vmlinuz',
      ...(elf ? { kernelElf: 'vmlinux' } : {}),
      initramfs: 'initramfs.cpio.zst',
      runtimeDir: GUEST_RUNTIME_DIR,
      modules: modules.map((m) => m.name),
      initramfsBytes: compressed.length,
    };
    await writeFile(join(output, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    let image = imageFromDir(output, manifest);
    if (useCache) {
      await mkdir(join(cacheDir, 'images'), { recursive: true });
      try {
        await rename(output, imageDir);
      } catch (err) {
        // Another build of the same inputs won the race; its bytes are the same.
        if (!existsSync(join(imageDir, 'manifest.json'))) throw err;
      }
      image = await loadGuestImage(imageDir);
    }
    if (options.out) {
      await copyImage(image, options.out);
      image = await loadGuestImage(options.out);
    }
    progress.done(
      `guest image ${hash}: kernel ${kernelVersion}, initramfs ${(compressed.length / 1048576).toFixed(1)} MiB`,
    );
    return image;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function onlyKernelVersion(tree: string, packages: DebianPackage[]): Promise<string> {
  const versions = await readdir(join(tree, 'lib', 'modules'));
  if (versions.length !== 1 || !versions[0]) {
    throw new Error(
      `expected one kernel in ${packages.map((p) => p.name).join(', ')}, found ${versions.join(', ') || 'none'}`,
    );
  }
  return versions[0];
}

async function copyImage(image: GuestImage, out: string): Promise<void> {
  await mkdir(out, { recursive: true });
  const files = [image.manifest.kernel, image.manifest.initramfs, 'manifest.json'];
  if (image.manifest.kernelElf) files.push(image.manifest.kernelElf);
  await mkdir(join(out, SOCAT_LIBRARY_DIR), { recursive: true });
  files.push(join(image.manifest.runtimeDir, 'node'), SOCAT_FILE);
  for (const library of await readdir(join(image.dir, SOCAT_LIBRARY_DIR))) {
    files.push(join(SOCAT_LIBRARY_DIR, library));
  }
  for (const file of files) await copyFile(join(image.dir, file), join(out, file));
}
