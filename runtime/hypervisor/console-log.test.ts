import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConsoleLog } from './console-log.ts';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgebox-console-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('guest console log', () => {
  it('stops the file at its cap and keeps only a small tail in memory', async () => {
    const log = new ConsoleLog(join(dir, 'console.log'), 64 * 1024);
    const line = Buffer.from(`${'x'.repeat(1023)}\n`);
    for (let i = 0; i < 4096; i++) log.write(line);
    log.write(Buffer.from('kernel panic: the end\n'));
    await log.close();
    const text = await readFile(join(dir, 'console.log'), 'utf8');
    expect(text.length).toBeLessThan(65 * 1024);
    expect(text).toMatch(/console log truncated at 65536 bytes/);
    expect(log.tail(2)).toBe(`${'x'.repeat(1023)}\nkernel panic: the end`);
  });

  it('escapes control characters in the tail, which goes into messages on a terminal', async () => {
    const log = new ConsoleLog(join(dir, 'console.log'));
    log.write(Buffer.from('[    1.0] booting\r\n'));
    log.write(Buffer.from('ok\x1b]0;owned\x07\x1b[2J fake\rline \u202e\tend\r\n'));
    await log.close();
    expect(log.tail(2)).toBe(
      '[    1.0] booting\nok\\x1b]0;owned\\x07\\x1b[2J fake\\x0dline \\u202e\tend',
    );
    // The file keeps the guest's bytes as they came.
    expect(await readFile(join(dir, 'console.log'), 'utf8')).toContain('\x1b[2J');
  });

  it('bounds the tail even for one endless line', async () => {
    const log = new ConsoleLog(join(dir, 'console.log'), 1024);
    for (let i = 0; i < 256; i++) log.write(Buffer.alloc(64 * 1024, 0x41));
    await log.close();
    expect(log.tail(15).length).toBeLessThanOrEqual(16 * 1024);
  });
});
