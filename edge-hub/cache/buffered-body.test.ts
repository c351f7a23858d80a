import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from './buffered-body.ts';

/** Writes `body` in chunks cut at `cuts`, each chunk overwritten right after (a reused read buffer). */
async function collect(
  body: Buffer,
  cuts: readonly number[],
  opts: ConstructorParameters<typeof BufferedBody>[1] = {},
  encoding?: string,
): Promise<Buffer | Error> {
  const b = new BufferedBody(encoding, opts);
  const reused = Buffer.alloc(body.length);
  let at = 0;
  for (const end of [...cuts, body.length]) {
    const chunk = reused.subarray(0, end - at);
    body.copy(chunk, 0, at, end);
    b.write(chunk);
    chunk.fill(0x58); // 'X': whatever the next read brings
    at = end;
  }
  return b.finish();
}

const OBJECT = Buffer.from('{"kind":"Pod","metadata":{"name":"a","resourceVersion":"5"}}');

describe('BufferedBody', () => {
  it('keeps copies of what it is given, never the caller’s buffers', async () => {
    for (const cuts of [[], [1], [10, 11, 40], [OBJECT.length - 1]]) {
      const body = await collect(OBJECT, cuts);
      expect(body.toString()).toBe(OBJECT.toString());
    }
  });

  it('gives back the expected bytes themselves when the answer repeats them, however it is cut', async () => {
    const answer = Buffer.concat([OBJECT, Buffer.from('\n')]); // the apiserver's newline
    for (let cut = 0; cut <= answer.length; cut++) {
      const cuts = cut === 0 || cut === answer.length ? [] : [cut];
      expect(await collect(answer, cuts, { expected: OBJECT })).toBe(OBJECT);
    }
  });

  it('gives the answer’s own bytes when it differs anywhere from the expected ones', async () => {
    const newer = Buffer.from(OBJECT.toString().replace('"5"', '"6"'));
    const longer = Buffer.from(`${OBJECT.toString()}\n{}`);
    const shorter = OBJECT.subarray(0, OBJECT.length - 2);
    for (const answer of [newer, longer, shorter]) {
      for (let cut = 1; cut < answer.length; cut += 7) {
        const body = await collect(answer, [cut], { expected: OBJECT });
        expect(body).not.toBe(OBJECT);
        expect(body.toString()).toBe(answer.toString());
      }
    }
  });

  it('sizes its buffer from Content-Length and still takes more than announced', async () => {
    const body = await collect(OBJECT, [5, 30], { contentLength: 8 });
    expect(body.toString()).toBe(OBJECT.toString());
  });

  it('decodes gzip from chunks it does not own', async () => {
    const zipped = gzipSync(OBJECT);
    const body = await collect(zipped, [3, 10], {}, 'gzip');
    expect(body.toString()).toBe(OBJECT.toString());
  });

  it('has no body once aborted or over an unsupported encoding', async () => {
    const b = new BufferedBody(undefined);
    b.write(OBJECT);
    b.abort();
    expect(await b.finish()).toBeInstanceOf(Error);
    expect(String(await collect(OBJECT, [], {}, 'compress'))).toContain('unsupported');
  });
});
