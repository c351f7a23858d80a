import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const bin = new URL('../bin/edgebox.js', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

function edgebox(...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('edgebox CLI', () => {
  it('prints its version', () => {
    const r = edgebox('--version');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('prints help with usage', () => {
    const r = edgebox('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: edgebox');
    expect(r.stdout).toContain('--version');
  });

  it('fails on an unknown option with one line and a hint', () => {
    const r = edgebox('--frobnicate');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("unknown option '--frobnicate'");
    expect(r.stderr).toContain('--help');
  });

  it('refuses to run on a Node without type stripping, with a clear message', () => {
    const r = spawnSync('/usr/bin/node', [bin, '--version'], { encoding: 'utf8' });
    if (r.error !== undefined) return; // no system node on this machine: nothing to check
    const major = Number(
      /^v(\d+)/.exec(spawnSync('/usr/bin/node', ['-v'], { encoding: 'utf8' }).stdout)?.[1],
    );
    if (major >= 23) return;
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/needs Node\.js >= 22\.19/);
  });
});
