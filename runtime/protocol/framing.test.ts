import { describe, expect, it } from 'vitest';
import { FrameDecoder, FrameTooLargeError, encodeFrame } from './framing.ts';

describe('framing', () => {
  it('round-trips frames split at every byte boundary', () => {
    const payloads = [Buffer.from('{"a":1}'), Buffer.alloc(0), Buffer.from('x'.repeat(70_000))];
    const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
    for (const step of [1, 3, 4, 5, 4096, stream.length]) {
      const decoder = new FrameDecoder();
      const out: Buffer[] = [];
      for (let i = 0; i < stream.length; i += step)
        out.push(...decoder.push(stream.subarray(i, i + step)));
      expect(out.map((b) => b.toString())).toEqual(payloads.map((p) => p.toString()));
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it('rejects an oversized frame from its header, before buffering its body', () => {
    const decoder = new FrameDecoder(1024);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(0xffffffff, 0);
    expect(() => decoder.push(header)).toThrow(FrameTooLargeError);
    expect(decoder.bufferedBytes).toBeLessThanOrEqual(4);
  });

  it('never holds more than one frame', () => {
    const decoder = new FrameDecoder(1024);
    const frame = encodeFrame(Buffer.alloc(1000));
    decoder.push(frame.subarray(0, 900));
    expect(decoder.bufferedBytes).toBe(900);
    expect(decoder.push(frame.subarray(900))).toHaveLength(1);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('refuses to encode a frame above the limit', () => {
    expect(() => encodeFrame(Buffer.alloc(11), 10)).toThrow(/exceeds the limit/);
  });
});
