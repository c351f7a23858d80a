// Bundles the CLI for the deployed hub (deploy/hub/edgebox-hub.service runs it):
//
//   node scripts/bundle-hub.ts [OUT_DIR]      (default dist/hub; `npm run build` runs it)
//
// What it saves, measured on the hub as the unit runs it with 10,000 pods
// cached (`npm run bench -- hub --memory-only`, bench/README.md): ~6 MB in
// all, 85-86 -> 79-79.5 MB resident:
// - minified, tree-shaken dependencies: ~0.6 MB of source in a handful of
//   chunks instead of ~2 MB over ~425 modules (zod alone brings 55 locale
//   modules the hub never uses); V8 keeps every loaded source, its scope
//   infos and function records for as long as the hub runs (~-4.5 MB);
// - CommonJS output (.cjs): an ES module entry makes Node start its ESM
//   loader (+3.2 MB for an empty program; ~-1.5 MB on the hub);
// - ASCII output: one non-Latin-1 character makes V8 store a whole chunk's
//   source at two bytes per character (~0.5 MB of sources here).
// The kubeconfig resolver is a second build, an ES module (it imports
// client-node, which is one): the hub spawns it from its own directory
// (edge-hub/upstream/kubeconfig-resolution.ts), as kubeconfig-resolver-child.js.
// The other CLI parts stay split into chunks that load only for their commands.
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown, type OutputOptions, type Plugin } from 'rolldown';

const REPO = fileURLToPath(new URL('../', import.meta.url));

/** The hub's entry file in the output directory (the unit's ExecStart runs it). */
export const HUB_BUNDLE_ENTRY = 'edgebox.cjs';
/** The resolver's file: kubeconfig-resolution.ts looks for it beside its own module. */
export const RESOLVER_BUNDLE_ENTRY = 'kubeconfig-resolver-child.js';

/**
 * Left to node_modules at run time: client-node and the bundler load only in
 * short-lived children or for other commands.
 */
const EXTERNAL = [/^@kubernetes\/client-node(\/|$)/, /^rolldown(\/|$)/];

const ADDON_ID = '\0classic-level-binding';

/**
 * classic-level's JavaScript (and abstract-level's, ~30 modules) goes into
 * the bundle; only its native addon is found at run time, in the installed
 * package, where node-gyp-build looks for the prebuilt binary beside it.
 */
function classicLevelAddon(): Plugin {
  return {
    name: 'classic-level-addon',
    resolveId: (source, importer) =>
      source === './binding' &&
      importer !== undefined &&
      /[\\/]classic-level[\\/][^\\/]+\.js$/.test(importer)
        ? ADDON_ID
        : null,
    load: (id) =>
      id === ADDON_ID
        ? [
            "const { dirname } = require('node:path');",
            "module.exports = require('node-gyp-build')(dirname(require.resolve('classic-level/package.json')));",
          ].join('\n')
        : null,
  };
}

const NO_LONG_ID = '\0edgebox-no-long';

/**
 * protobufjs (the hub's Lease decoder, edge-hub/local/lease-protobuf.ts)
 * uses long.js when it can load it, and long.js instantiates a WebAssembly
 * module as it loads: ~0.8 MB resident for 64-bit arithmetic the hub never
 * does. Without it protobufjs reads int64 fields as numbers, which is all
 * the decoder wants (seconds, generations).
 */
function withoutLongJs(): Plugin {
  return {
    name: 'edgebox-no-long',
    resolveId: (source) => (source === 'long' ? NO_LONG_ID : null),
    load: (id) => (id === NO_LONG_ID ? 'module.exports = null;' : null),
  };
}

const ENTRY_ID = '\0edgebox-bundle-entry';

/** The bundle's main module: bin/edgebox.js without its version check and source switch. */
function entryModule(): Plugin {
  const cli = JSON.stringify(resolve(REPO, 'src/cli.ts'));
  return {
    name: 'edgebox-bundle-entry',
    resolveId: (id) => (id === ENTRY_ID ? id : null),
    load: (id) =>
      id === ENTRY_ID
        ? `import { main } from ${cli};\nmain(process.argv).then((code) => { process.exitCode = code; });\n`
        : null,
  };
}

const COMMON_OUTPUT: OutputOptions = {
  minify: true,
  comments: false,
  charset: 'ascii',
};

async function build(
  input: Record<string, string>,
  output: OutputOptions,
  plugins: Plugin[] = [],
): Promise<void> {
  const bundle = await rolldown({
    input,
    platform: 'node',
    external: EXTERNAL,
    plugins,
    logLevel: 'warn',
  });
  try {
    await bundle.write({ ...COMMON_OUTPUT, ...output });
  } finally {
    await bundle.close();
  }
}

/** Writes the hub bundle (HUB_BUNDLE_ENTRY, its chunks and RESOLVER_BUNDLE_ENTRY) into `outDir`. */
export async function bundleHub(outDir: string): Promise<void> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  await build(
    { edgebox: ENTRY_ID },
    {
      dir: outDir,
      format: 'cjs',
      entryFileNames: '[name].cjs',
      chunkFileNames: '[name]-[hash].cjs',
    },
    [entryModule(), classicLevelAddon(), withoutLongJs()],
  );
  await build(
    {
      [RESOLVER_BUNDLE_ENTRY.replace(/\.js$/, '')]: resolve(
        REPO,
        'edge-hub/upstream/kubeconfig-resolver-child.ts',
      ),
    },
    {
      dir: outDir,
      format: 'esm',
      entryFileNames: '[name].js',
      chunkFileNames: 'resolver-[name]-[hash].js',
    },
  );
  const files = readdirSync(outDir);
  for (const expected of [HUB_BUNDLE_ENTRY, RESOLVER_BUNDLE_ENTRY]) {
    if (!files.includes(expected)) {
      throw new Error(
        `bundling the hub wrote no ${join(outDir, expected)} (got ${files.join(', ')})`,
      );
    }
  }
}

if (import.meta.main) {
  const outDir = resolve(process.argv[2] ?? resolve(REPO, 'dist/hub'));
  await bundleHub(outDir);
  process.stdout.write(`bundled the hub into ${outDir}\n`);
}
