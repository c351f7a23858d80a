#!/usr/bin/env node
// `npm run bench -- [hub|ecm|sandbox ...]`: runs benchmarks and prints their tables.
const { runBenchmarks } = await import('../bench/main.ts');
process.exitCode = await runBenchmarks(process.argv.slice(2));
