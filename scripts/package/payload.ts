// What every edgebox artefact carries: the Node runtime the project runs on,
// the compiled CLI and its hub bundle, the TypeScript sources (bin scripts may
// strip types at load), and the production dependencies, laid out as
// INSTALL_DIR; and a launcher per package.json `bin` entry.
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findGuestNode, writeStrippedBinary } from '../../runtime/image/guest-node.ts';
import { runTool } from './run-tool.ts';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** Where the payload is installed, on a node and in the image. */
export const INSTALL_DIR = '/usr/lib/edgebox';
/** Where the launchers of the `bin` entries go. */
export const BIN_DIR = '/usr/bin';
export const NODE_BINARY = `${INSTALL_DIR}/node`;
/**
 * The guest kernel and initramfs the package ships, built at package time;
 * the launchers make it the runtime's image cache (EDGEBOX_CACHE_DIR) unless
 * one is set, so a node starts sandboxes without apt or npm.
 */
export const GUEST_CACHE_DIR = `${INSTALL_DIR}/guest`;
/**
 * The shipped image itself (a link into GUEST_CACHE_DIR): the containerd
 * shim's EDGEBOX_GUEST_IMAGE by default, so a pod starts with nothing built
 * on the node.
 */
export const GUEST_IMAGE_LINK = `${INSTALL_DIR}/guest-image`;

export interface PackageJson {
  name: string;
  version: string;
  description: string;
  bin: Record<string, string>;
}

export function readPackageJson(): PackageJson {
  return JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as PackageJson;
}

/** The folders the compiled build is made of (tsconfig.build.json), less the test doubles. */
function sourceFolders(): string[] {
  const tsconfig = JSON.parse(readFileSync(join(REPO, 'tsconfig.build.json'), 'utf8')) as {
    include: string[];
  };
  return tsconfig.include.filter((folder) => !folder.startsWith('test'));
}

const NOT_SHIPPED = /(\.test\.ts|[\\/]testdata|[\\/]test-support|[\\/]testing|[\\/]demo)$/;

/** The production dependencies' folders (`npm ls --omit=dev`), relative to the repository. */
function productionModules(): string[] {
  const out = runTool('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: REPO });
  return [
    ...new Set(
      out
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => relative(REPO, line))
        .filter((path) => path.startsWith('node_modules')),
    ),
  ];
}

/**
 * A launcher for one `bin` entry: run by the shipped Node through its
 * shebang (no shell, so it works in a distroless image too), with the
 * compiled build selected.
 */
function launcher(name: string, script: string): string {
  return [
    `#!${NODE_BINARY}`,
    `// ${name}, as the edgebox package installs it: the compiled build, on the Node it ships.`,
    "process.env.EDGEBOX_COMPILED ??= '1';",
    `process.env.EDGEBOX_CACHE_DIR ??= ${JSON.stringify(GUEST_CACHE_DIR)};`,
    `process.env.EDGEBOX_GUEST_IMAGE ??= ${JSON.stringify(GUEST_IMAGE_LINK)};`,
    `import(${JSON.stringify(join(INSTALL_DIR, script))});`,
    '',
  ].join('\n');
}

/**
 * Lays the payload out under `root` (a filesystem tree: files land in
 * root + INSTALL_DIR and root + BIN_DIR). Expects `npm run build` to have run.
 * Returns the launchers' names.
 */
export async function stagePayload(root: string): Promise<string[]> {
  const pkg = readPackageJson();
  const lib = join(root, INSTALL_DIR);
  mkdirSync(lib, { recursive: true });
  copyFileSync(join(REPO, 'package.json'), join(lib, 'package.json'));
  // The Node the project runs on (the `node` devDependency), without its symbols.
  await writeStrippedBinary(await findGuestNode(), join(lib, 'node'));
  const skip = (src: string) => !NOT_SHIPPED.test(src);
  for (const folder of sourceFolders()) {
    cpSync(join(REPO, folder), join(lib, folder), { recursive: true, filter: skip });
    cpSync(join(REPO, 'dist', folder), join(lib, 'dist', folder), {
      recursive: true,
      filter: skip,
    });
  }
  cpSync(join(REPO, 'dist/hub'), join(lib, 'dist/hub'), { recursive: true });
  for (const module of productionModules()) {
    cpSync(join(REPO, module), join(lib, module), { recursive: true, verbatimSymlinks: true });
  }
  const names: string[] = [];
  for (const [name, script] of Object.entries(pkg.bin)) {
    mkdirSync(join(lib, dirname(script)), { recursive: true });
    copyFileSync(join(REPO, script), join(lib, script));
    const path = join(root, BIN_DIR, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, launcher(name, script), { mode: 0o755 });
    chmodSync(path, 0o755);
    names.push(name);
  }
  return names;
}
