import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('node:http for the hub', () => {
  it('is loaded without undici by every module of the hub', () => {
    const modules = ['./command.ts', './hub.ts', './node-http.ts'].map((m) =>
      fileURLToPath(new URL(m, import.meta.url)),
    );
    const script = `${modules.map((m) => `await import(${JSON.stringify(m)});`).join(' ')}
const { nodeHttp } = await import(${JSON.stringify(modules[2])});
console.log(JSON.stringify({ agent: typeof nodeHttp.Agent, undici: process.moduleLoadList.some((m) => m.includes('undici')) }));`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ agent: 'function', undici: false });
  });
});
