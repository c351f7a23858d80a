import { spawn } from 'node:child_process';
import { mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setidFilterProgram } from './setid-filter.ts';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgebox-setid-filter-'));
  await writeFile(join(dir, 'filter.bpf'), setidFilterProgram());
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `script` in a Node process loaded with the filter by bwrap (as virtiofsd is); its stdout. */
async function underFilter(script: string): Promise<string> {
  const filter = await open(join(dir, 'filter.bpf'), 'r');
  try {
    const child = spawn(
      'bwrap',
      ['--dev-bind', '/', '/', '--seccomp', '3', '--', process.execPath, '-e', script, dir],
      { stdio: ['ignore', 'pipe', 'inherit', filter.fd] },
    );
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    return stdout;
  } finally {
    await filter.close();
  }
}

/** Each operation's outcome: ok or the error code. */
const TRY = `
const fs = require('node:fs');
const path = require('node:path');
const dir = process.argv[1];
const attempt = (f) => { try { f(); return 'ok'; } catch (e) { return e.code; } };
`;

describe('the setuid/setgid seccomp filter (a real process under bwrap)', () => {
  it('refuses setuid and setgid modes by chmod and by creation, and allows every other mode', async () => {
    const out = await underFilter(
      `${TRY}
      const file = path.join(dir, 'file');
      fs.writeFileSync(file, '#!/bin/sh\\n');
      console.log(JSON.stringify({
        chmod4755: attempt(() => fs.chmodSync(file, 0o4755)),
        chmod2755: attempt(() => fs.chmodSync(file, 0o2755)),
        fchmod6755: attempt(() => { const fd = fs.openSync(file, 'r'); try { fs.fchmodSync(fd, 0o6755); } finally { fs.closeSync(fd); } }),
        create4755: attempt(() => fs.closeSync(fs.openSync(path.join(dir, 'created-suid'), 'w', 0o4755))),
        chmod755: attempt(() => fs.chmodSync(file, 0o755)),
        chmod1777: attempt(() => fs.chmodSync(file, 0o1777)),
        create644: attempt(() => fs.closeSync(fs.openSync(path.join(dir, 'created'), 'w', 0o644))),
        openSuidForRead: attempt(() => fs.closeSync(fs.openSync(file, 'r', 0o4755))),
      }));`,
    );
    expect(JSON.parse(out)).toEqual({
      chmod4755: 'EPERM',
      chmod2755: 'EPERM',
      fchmod6755: 'EPERM',
      create4755: 'EPERM',
      chmod755: 'ok',
      chmod1777: 'ok',
      create644: 'ok',
      // Without O_CREAT the mode argument means nothing and is not looked at.
      openSuidForRead: 'ok',
    });
    expect((await stat(join(dir, 'file'))).mode & 0o7777).toBe(0o1777);
    await expect(stat(join(dir, 'created-suid'))).rejects.toThrow(/ENOENT/);
  });
});
