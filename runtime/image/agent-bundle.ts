import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The runtime's TypeScript sources. The agent is always bundled from them:
 * the compiled build (dist/runtime/image/) has only JavaScript beside it, and
 * bundling that instead would give another image hash than `npx edgebox` does
 * for the same sources, so a node would rebuild its image on switching.
 */
const RUNTIME_SOURCES = [
  new URL('../', import.meta.url),
  new URL('../../../runtime/', import.meta.url),
].find((dir) => existsSync(new URL('guest/agent.ts', dir)));

function sourcePath(relative: string): string {
  if (RUNTIME_SOURCES === undefined) {
    throw new Error(
      `the guest agent's TypeScript sources (runtime/guest/agent.ts) are not beside ${fileURLToPath(import.meta.url)}: building a guest image needs the source tree`,
    );
  }
  return fileURLToPath(new URL(relative, RUNTIME_SOURCES));
}

/**
 * Bundles the guest agent (TypeScript, plus zod and the shared protocol
 * modules) into one ES module. One file rather than type-stripped sources and
 * a node_modules tree: under emulation every module Node resolves and reads
 * costs time at each boot, and the image then carries exactly the code the
 * agent runs. Rolldown's output is deterministic for the same sources.
 */
export async function bundleAgent(): Promise<Buffer> {
  // Loaded only to build: the bundler is large, and `sandbox run` needs it only on a cache miss.
  const { rolldown } = await import('rolldown');
  const bundle = await rolldown({
    input: sourcePath('guest/agent.ts'),
    platform: 'node',
    logLevel: 'silent',
  });
  try {
    const { output } = await bundle.generate({ format: 'esm', minify: false, comments: false });
    const [chunk] = output;
    if (!chunk || output.length !== 1 || chunk.type !== 'chunk') {
      throw new Error(`bundling the guest agent gave ${output.length} outputs, expected one chunk`);
    }
    return Buffer.from(chunk.code);
  } finally {
    await bundle.close();
  }
}

/** Directories whose TypeScript makes up the agent bundle. */
const AGENT_SOURCE_DIRS = ['guest', 'protocol'];

/**
 * What decides the bundle's bytes without running the bundler: the agent's
 * sources, and the versions of zod (bundled in) and of the bundler.
 */
export async function agentSourceFingerprint(): Promise<string> {
  const hash = createHash('sha256');
  for (const dir of AGENT_SOURCE_DIRS.map(sourcePath)) {
    const files = (await readdir(dir)).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
    for (const file of files.sort()) {
      hash
        .update(`${file}\0`)
        .update(await readFile(join(dir, file)))
        .update('\0');
    }
  }
  const require = createRequire(import.meta.url);
  for (const pkg of ['zod', 'rolldown']) {
    const path = join(dirname(require.resolve(`${pkg}/package.json`)), 'package.json');
    const { version } = JSON.parse(await readFile(path, 'utf8')) as { version: string };
    hash.update(`${pkg}@${version}\0`);
  }
  return hash.digest('hex');
}
