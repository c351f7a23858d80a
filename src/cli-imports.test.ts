import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const bin = new URL('../bin/edgebox.js', import.meta.url).pathname;

// Prints every module URL the process resolves, one per line, before it runs.
const RESOLVE_LOGGER = [
  'import { registerHooks } from "node:module";',
  'import { writeSync } from "node:fs";',
  'registerHooks({ resolve(specifier, context, next) {',
  '  const resolved = next(specifier, context);',
  '  writeSync(2, `resolved ${resolved.url}\\n`);',
  '  return resolved;',
  '} });',
].join('\n');

function edgeboxLoading(...args: string[]) {
  const r = spawnSync(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(RESOLVE_LOGGER)}`, bin, ...args],
    { encoding: 'utf8' },
  );
  const lines = r.stderr.split('\n');
  return {
    code: r.status,
    modules: lines.filter((l) => l.startsWith('resolved ')).map((l) => l.slice(9)),
    errors: lines.filter((l) => !l.startsWith('resolved ') && l !== ''),
  };
}

describe('edgebox CLI module loading', () => {
  it('loads no other part and no hub, ECM or build-only dependency for `sandbox run`', () => {
    // --accel is checked after the run path is imported and before anything runs.
    const r = edgeboxLoading(
      'sandbox',
      'run',
      '--rootfs',
      '/nonexistent',
      '--accel',
      'bogus',
      '--',
      'true',
    );
    expect(r.errors).toEqual(['edgebox: --accel bogus: expected auto, kvm or tcg']);
    expect(r.code).toBe(1);
    expect(r.modules.some((m) => m.endsWith('/runtime/sandbox/run.ts'))).toBe(true);
    const unwanted = [
      '/edge-hub/',
      '/controllers/',
      '/src/config/',
      '/node_modules/yaml/',
      '/node_modules/@kubernetes/client-node/',
      '/node_modules/prom-client/',
      '/node_modules/pino/',
      '/node_modules/level/',
      '/node_modules/rolldown/',
    ];
    expect(r.modules.filter((m) => unwanted.some((u) => m.includes(u)))).toEqual([]);
  });

  it('still lists every part in --help', () => {
    const r = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const command of ['hub', 'sandbox', 'ecm'])
      expect(r.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
  });

  it('reports a configuration error in one line with exit code 2', () => {
    const r = spawnSync(process.execPath, [bin, 'ecm', '--node-monitor-period', 'bogus'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^edgebox: invalid configuration: nodeMonitorPeriod = "bogus"/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
