import { describe, expect, it } from 'vitest';
import {
  MAX_STDIN_CHUNK_BYTES,
  guestMessageSchema,
  hostRequestSchema,
  responseResultSchemas,
} from './messages.ts';

describe('protocol messages', () => {
  it('accepts a well-formed create request', () => {
    const request = {
      v: 1,
      kind: 'request',
      id: 1,
      op: 'createContainer',
      spec: {
        id: 'web',
        rootfs: 'containers/web/rootfs',
        process: { args: ['sh'], env: ['A=b'], cwd: '/', user: { uid: 0, gid: 0 } },
        mounts: [{ source: 'containers/web/volumes/0', destination: '/data', readOnly: true }],
        resources: { memoryMaxBytes: 1 << 20 },
      },
    };
    expect(hostRequestSchema.parse(request)).toEqual(request);
  });

  it('refuses share paths that escape the share and ids that are not safe names', () => {
    const base = { v: 1, kind: 'request', id: 1, op: 'startContainer' };
    expect(hostRequestSchema.safeParse({ ...base, containerId: '../etc' }).success).toBe(false);
    expect(hostRequestSchema.safeParse({ ...base, containerId: 'ok-1' }).success).toBe(true);
    const spec = {
      id: 'a',
      rootfs: '../../etc',
      process: { args: ['sh'], env: [], cwd: '/', user: { uid: 0, gid: 0 } },
      mounts: [],
      resources: {},
    };
    expect(hostRequestSchema.safeParse({ ...base, op: 'createContainer', spec }).success).toBe(
      false,
    );
  });

  it('takes limits or max in an update and refuses negative ones, naming the field', () => {
    const base = { v: 1, kind: 'request', id: 1, op: 'updateResources', containerId: 'web' };
    const update = { ...base, resources: { memoryMaxBytes: 'max', cpuQuotaMicros: 50_000 } };
    expect(hostRequestSchema.parse(update)).toEqual(update);
    const negative = hostRequestSchema.safeParse({ ...base, resources: { pidsMax: -5 } });
    expect(negative.error?.issues[0]?.path).toEqual(['resources', 'pidsMax']);
  });

  it('refuses other protocol versions and unknown kinds from the guest', () => {
    expect(
      guestMessageSchema.safeParse({ v: 2, kind: 'log', level: 'info', message: 'x' }).success,
    ).toBe(false);
    expect(guestMessageSchema.safeParse({ v: 1, kind: 'shell', cmd: 'rm -rf /' }).success).toBe(
      false,
    );
    expect(
      guestMessageSchema.safeParse({ v: 1, kind: 'exited', containerId: 'a', exitCode: 300 })
        .success,
    ).toBe(false);
  });

  it('validates results per request kind', () => {
    expect(responseResultSchemas.startContainer.safeParse({ pid: 3 }).success).toBe(true);
    expect(responseResultSchemas.startContainer.safeParse({ pid: -1 }).success).toBe(false);
    expect(responseResultSchemas.stats.safeParse({ cpu: {} }).success).toBe(false);
  });

  it('bounds a stdin chunk and a terminal size', () => {
    const base = { v: 1, kind: 'request', id: 1, containerId: 'web', execId: 'sh-1' };
    const chunk = (bytes: number): unknown => ({
      ...base,
      op: 'stdin',
      data: Buffer.alloc(bytes).toString('base64'),
    });
    expect(hostRequestSchema.safeParse(chunk(MAX_STDIN_CHUNK_BYTES)).success).toBe(true);
    expect(hostRequestSchema.safeParse(chunk(MAX_STDIN_CHUNK_BYTES + 3)).success).toBe(false);
    const resize = { ...base, op: 'resizeTerminal', rows: 40, cols: 120 };
    expect(hostRequestSchema.parse(resize)).toEqual(resize);
    expect(hostRequestSchema.safeParse({ ...resize, cols: 70_000 }).success).toBe(false);
  });
});
