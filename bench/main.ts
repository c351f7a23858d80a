import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Each benchmark is a module `bench/<name>.ts` exporting
 * `runBenchmark(args: string[]): Promise<void>`, which prints its own table.
 * `npm run bench` runs them all; `npm run bench -- hub ecm` runs those.
 */
interface BenchmarkModule {
  runBenchmark(args: string[]): Promise<void>;
}

function available(): string[] {
  const dir = fileURLToPath(new URL('.', import.meta.url));
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && f !== 'main.ts' && !f.endsWith('.test.ts'))
    .map((f) => f.slice(0, -3))
    .sort();
}

export async function runBenchmarks(argv: string[]): Promise<number> {
  const names = available();
  const wanted = argv.filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((w) => !names.includes(w));
  if (unknown.length > 0) {
    process.stderr.write(
      `bench: unknown benchmark ${unknown.join(', ')} (available: ${names.join(', ') || 'none'})\n`,
    );
    return 2;
  }
  for (const name of wanted.length > 0 ? wanted : names) {
    const mod = (await import(`./${name}.ts`)) as BenchmarkModule;
    process.stdout.write(`\n== ${name} ==\n`);
    await mod.runBenchmark(argv.filter((a) => a.startsWith('-')));
  }
  return 0;
}
