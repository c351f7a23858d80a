import { describe, expect, it } from 'vitest';
import { decodeProtobufObject, ProtobufDecodeError } from './protobuf-body.ts';

// A minimal protobuf writer, enough to build what a Go client would send.
const varint = (n: number | bigint): Buffer => {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Buffer.from(out);
};
const tag = (field: number, wire: number): Buffer => varint((field << 3) | wire);
const str = (field: number, s: string | Buffer): Buffer => {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  return Buffer.concat([tag(field, 2), varint(b.length), b]);
};
const num = (field: number, n: number): Buffer => Buffer.concat([tag(field, 0), varint(n)]);
const envelope = (apiVersion: string, kind: string, raw: Buffer): Buffer =>
  Buffer.concat([
    Buffer.from('k8s\0', 'binary'),
    str(1, Buffer.concat([str(1, apiVersion), str(2, kind)])),
    str(2, raw),
  ]);

describe('protobuf request bodies', () => {
  it('decodes a kubelet-style Lease with MicroTime and int32 fields', () => {
    const renew = Buffer.concat([num(1, 1_700_000_000), num(2, 123_456_000)]);
    const meta = Buffer.concat([
      str(1, 'edge-1'),
      str(3, 'kube-node-lease'),
      str(11, Buffer.concat([str(1, 'k'), str(2, 'v')])),
    ]);
    const spec = Buffer.concat([str(1, 'edge-1'), num(2, 40), str(4, renew)]);
    const obj = decodeProtobufObject(
      envelope('coordination.k8s.io/v1', 'Lease', Buffer.concat([str(1, meta), str(2, spec)])),
    );
    expect(obj).toEqual({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'edge-1', namespace: 'kube-node-lease', labels: { k: 'v' } },
      spec: {
        holderIdentity: 'edge-1',
        leaseDurationSeconds: 40,
        renewTime: '2023-11-14T22:13:20.123456Z',
      },
    });
  });

  it('decodes bytes maps as base64 and negative int64', () => {
    const meta = Buffer.concat([str(1, 's'), num(10, -1)]);
    const entry = Buffer.concat([str(1, 'key'), str(2, Buffer.from([0xff, 0x00]))]);
    const obj = decodeProtobufObject(
      envelope('v1', 'Secret', Buffer.concat([str(1, meta), str(2, entry), str(3, 'Opaque')])),
    );
    expect(obj).toMatchObject({
      metadata: { name: 's', deletionGracePeriodSeconds: -1 },
      data: { key: '/wA=' },
      type: 'Opaque',
    });
  });

  it('refuses kinds it has no schema for, and bodies without the magic', () => {
    expect(() => decodeProtobufObject(envelope('v1', 'Pod', Buffer.alloc(0)))).toThrow(
      /cannot decode protobuf bodies of v1\/Pod/,
    );
    expect(() => decodeProtobufObject(Buffer.from('{"kind":"Pod"}'))).toThrow(ProtobufDecodeError);
  });
});
