import { describe, expect, it } from 'vitest';
import { parseVolume } from './command.ts';

describe('sandbox run --volume', () => {
  it("takes HOST:GUEST[:ro], and :GUEST for a directory on the sandbox's disk", () => {
    expect(parseVolume('/srv/data:/data:ro')).toEqual({
      hostPath: '/srv/data',
      containerPath: '/data',
      readOnly: true,
    });
    expect(parseVolume(':/scratch')).toEqual({ containerPath: '/scratch', readOnly: false });
    expect(() => parseVolume(':/scratch:ro')).toThrow(/starts empty, so not ro/);
    expect(() => parseVolume('/srv/data:data')).toThrow(/absolute GUEST path/);
  });
});
