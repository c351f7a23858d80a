import { execFileSync } from 'node:child_process';
import { constants, openSync, writeSync, closeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProcessInput } from './stdio.ts';

/** The stdin copier against a real FIFO, written as containerd writes it. */
let dir: string;
let fifo: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgebox-stdin-'));
  fifo = join(dir, 'stdin');
  execFileSync('mkfifo', [fifo]);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ProcessInput', () => {
  it('forwards what was written before CloseIO, even if it was never read yet', async () => {
    const forwarded: string[] = [];
    const input = ProcessInput.open(fifo, (data) => {
      forwarded.push(data.toString());
      return Promise.resolve();
    });
    const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(writer, 'hello\n');
    // containerd: everything written, then CloseIO, then its end closed.
    await input.close();
    closeSync(writer);
    expect(forwarded.join('')).toBe('hello\n');
  });

  it('reads the next chunk only once the guest took the last one', async () => {
    const forwarded: string[] = [];
    let release = (): void => undefined;
    let calls = 0;
    let input: ProcessInput | undefined;
    const firstCall = new Promise<void>((resolve) => {
      input = ProcessInput.open(fifo, (data) => {
        forwarded.push(data.toString());
        calls++;
        resolve();
        return calls === 1 ? new Promise<void>((r) => (release = r)) : Promise.resolve();
      });
    });
    const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(writer, 'one');
    await firstCall;
    // While the guest holds the first chunk, the FIFO fills up: the copier stops draining it.
    // The event loop turns between writes, so a copier that kept reading would take it all.
    const big = Buffer.alloc(1024 * 1024, 'x');
    let accepted = 0;
    for (let refused = 0; accepted < big.length && refused < 3;) {
      try {
        accepted += writeSync(writer, big, accepted, Math.min(64 * 1024, big.length - accepted));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        refused++;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(accepted).toBeLessThan(big.length);
    expect(forwarded).toEqual(['one']);
    release();
    input?.destroy();
    closeSync(writer);
  });
});
