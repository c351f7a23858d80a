import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface CompiledCliOptions {
  /** Repository paths of the modules to compile besides src/cli.ts (their imports follow). */
  entries: string[];
  /**
   * Repository folders whose TypeScript is copied beside the compiled files:
   * code that reads sources at run time (the runtime fingerprints the guest
   * agent's sources to find its cached guest image).
   */
  sourceDirs?: string[];
}

/**
 * Compiles the CLI and everything `entries` import to JavaScript in `dir`
 * (what `npm run build` does for the whole tree, narrowed so it is quicker),
 * laid out so it runs on its own: package.json beside it (the CLI reads its
 * version from there) and node_modules linked. Resolves with the command that
 * runs `edgebox` from the compiled files, or an Error saying why there is none.
 */
export async function buildCompiledCli(
  dir: string,
  options: CompiledCliOptions,
): Promise<string[] | Error> {
  const out = join(dir, 'dist');
  mkdirSync(out, { recursive: true });
  const tsconfig = join(dir, 'tsconfig.json');
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: join(REPO, 'tsconfig.build.json'),
      compilerOptions: { outDir: out, rootDir: REPO, sourceMap: false, noEmit: false },
      include: [join(REPO, 'src/cli.ts'), ...options.entries.map((e) => join(REPO, e))],
      exclude: [join(REPO, 'node_modules'), '**/*.test.ts'],
    }),
  );
  const tsc = join(REPO, 'node_modules/typescript/bin/tsc');
  const output = await new Promise<string>((resolve) => {
    // Type errors still emit; only missing output below means the build failed.
    const child = spawn(process.execPath, [tsc, '-p', tsconfig], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c.toString()));
    child.stderr.on('data', (c: Buffer) => (text += c.toString()));
    child.on('close', () => resolve(text));
    child.on('error', (err) => resolve(String(err)));
  });
  const cli = join(out, 'src/cli.js');
  if (!existsSync(cli)) {
    return new Error(
      `tsc produced no ${cli}: ${output.trim().split('\n').slice(0, 2).join(' | ')}`,
    );
  }
  for (const sourceDir of options.sourceDirs ?? []) {
    cpSync(join(REPO, sourceDir), join(out, sourceDir), {
      recursive: true,
      filter: (path) => !path.endsWith('.test.ts'),
    });
  }
  copyFileSync(join(REPO, 'package.json'), join(out, 'package.json'));
  if (!existsSync(join(out, 'node_modules')))
    symlinkSync(join(REPO, 'node_modules'), join(out, 'node_modules'));
  const launcher = join(out, 'edgebox.js');
  writeFileSync(
    launcher,
    "const { main } = await import('./src/cli.js');\nprocess.exitCode = await main(process.argv);\n",
  );
  return [process.execPath, launcher];
}

/** The compiled CLI narrowed to the hub's imports (see buildCompiledCli). */
export function buildCompiledHub(dir: string): Promise<string[] | Error> {
  return buildCompiledCli(dir, { entries: ['edge-hub/command.ts'] });
}

/** `edgebox` from the TypeScript sources, as `npx edgebox` runs it. */
export function sourceCliCommand(): string[] {
  return [process.execPath, join(REPO, 'bin/edgebox.js')];
}

/** The hub benchmark's name for sourceCliCommand. */
export const sourceHubCommand = sourceCliCommand;

export const REPO_DIR = REPO;
