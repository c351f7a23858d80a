// The node package: edgebox_<version>_<arch>.deb, built with dpkg-deb from a
// staged tree. It holds the payload (scripts/package/payload.ts: Node, the
// compiled CLI, the hub bundle, production dependencies), a launcher in
// /usr/bin for every package.json `bin` entry (the containerd shim among
// them once it is one), the hub's systemd unit, the guest kernel and
// initramfs (built now, so a node needs neither apt nor npm to start a
// sandbox) and deploy/ under /usr/share/edgebox. No conffiles and no postrm:
// `dpkg -r` removes every file it installed and leaves no package state.
import {
  cpSync,
  linkSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { DEFAULT_PATHS } from '../../node-setup/node-setup.ts';
import {
  GUEST_CACHE_DIR,
  GUEST_IMAGE_LINK,
  INSTALL_DIR,
  REPO,
  readPackageJson,
  stagePayload,
} from './payload.ts';
import { runTool } from './run-tool.ts';

export const SYSTEMD_DIR = '/lib/systemd/system';
export const SHARE_DIR = '/usr/share/edgebox';

function maintainerScript(body: string): string {
  return `#!/bin/sh\nset -e\n${body}\n`;
}

const DAEMON_RELOAD = 'if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi';

/** Removing the package under an enabled node would leave kubelet pointed at a hub that is gone. */
const PRERM = `case "$1" in remove|deconfigure)
  if [ -e ${DEFAULT_PATHS.hubEnvironment} ]; then
    echo "edgebox: this node is enabled (${DEFAULT_PATHS.hubEnvironment} exists): run 'edgebox node disable' first" >&2
    exit 1
  fi
  if [ -d /run/systemd/system ]; then systemctl stop edgebox-hub.service 2>/dev/null || true; fi
  ;;
esac`;

export interface GuestImageBuilder {
  /** Builds the guest image into `cacheDir` (as `edgebox sandbox image build --cache-dir` does). */
  (cacheDir: string): void;
}

/** `edgebox sandbox image build` from this checkout (it downloads the Debian kernel with apt). */
function buildGuestImage(cacheDir: string): void {
  runTool(process.execPath, [
    join(REPO, 'bin/edgebox.js'),
    'sandbox',
    'image',
    'build',
    '--cache-dir',
    cacheDir,
  ]);
}

/**
 * Builds the guest image into a scratch cache and ships what finding it
 * again needs (the images, the resolved package versions, the unpacked
 * guest packages), not the downloaded .debs. Each image's copy of the
 * stripped Node is the payload's, byte for byte: a hard link, not 110 MB more.
 */
function stageGuestImage(
  scratch: string,
  target: string,
  node: string,
  build: GuestImageBuilder,
): void {
  build(scratch);
  mkdirSync(target, { recursive: true });
  for (const entry of readdirSync(scratch)) {
    if (entry !== 'debs') cpSync(join(scratch, entry), join(target, entry), { recursive: true });
  }
  const images = readdirSync(join(target, 'images'));
  if (images.length !== 1) {
    throw new Error(`the guest image build left ${images.length} images in ${scratch}, not one`);
  }
  const nodeBytes = readFileSync(node);
  for (const image of images) {
    const copy = join(target, 'images', image, 'runtime', 'node');
    try {
      if (!readFileSync(copy).equals(nodeBytes)) continue;
    } catch {
      continue;
    }
    rmSync(copy);
    linkSync(node, copy);
  }
}

export async function buildDebianPackage(
  work: string,
  outDir: string,
  guestImage: GuestImageBuilder = buildGuestImage,
): Promise<string> {
  const { version, description } = readPackageJson();
  const arch = runTool('dpkg', ['--print-architecture']).trim();
  const root = join(work, 'root');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  await stagePayload(root);
  const units = join(root, SYSTEMD_DIR);
  mkdirSync(units, { recursive: true });
  cpSync(join(REPO, 'deploy/hub/edgebox-hub.service'), join(units, 'edgebox-hub.service'));
  cpSync(join(REPO, 'deploy'), join(root, SHARE_DIR, 'deploy'), { recursive: true });
  stageGuestImage(
    join(work, 'guest-cache'),
    join(root, GUEST_CACHE_DIR),
    join(root, INSTALL_DIR, 'node'),
    guestImage,
  );
  const [image] = readdirSync(join(root, GUEST_CACHE_DIR, 'images'));
  symlinkSync(
    relative(dirname(GUEST_IMAGE_LINK), join(GUEST_CACHE_DIR, 'images', image ?? '')),
    join(root, GUEST_IMAGE_LINK),
  );
  const size = Number(runTool('du', ['-sk', '--exclude=DEBIAN', root]).split('\t')[0]);
  const debian = join(root, 'DEBIAN');
  mkdirSync(debian);
  writeFileSync(
    join(debian, 'control'),
    [
      'Package: edgebox',
      `Version: ${version}`,
      `Architecture: ${arch}`,
      'Maintainer: edgebox maintainers <edgebox@localhost>',
      `Installed-Size: ${size}`,
      // bubblewrap loads virtiofsd's setuid/setgid seccomp filter (runtime/sharing/setid-filter.ts).
      'Depends: libc6, libstdc++6, libgcc-s1, bubblewrap',
      // The guest image's inputs include the host's static busybox.
      'Recommends: containerd, qemu-system-x86, qemu-system-common, busybox-static',
      'Section: admin',
      'Priority: optional',
      `Description: ${description}`,
      ' EdgeHub (edgebox hub), the edge controller-manager (edgebox ecm), the',
      ' sandbox runtime and its guest image, with the Node.js runtime they run on.',
      ' Put a node in service with: edgebox node enable',
      '',
    ].join('\n'),
  );
  for (const [name, body] of [
    ['postinst', DAEMON_RELOAD],
    // No postrm: with one, dpkg -r keeps the package's state (config-files) to run it at purge.
    ['prerm', PRERM],
  ] as const) {
    writeFileSync(join(debian, name), maintainerScript(body), { mode: 0o755 });
  }
  mkdirSync(outDir, { recursive: true });
  const deb = join(outDir, `edgebox_${version}_${arch}.deb`);
  runTool('dpkg-deb', ['--root-owner-group', '-Zzstd', '--build', root, deb]);
  return deb;
}
