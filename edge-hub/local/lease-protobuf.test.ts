import { describe, expect, it } from 'vitest';
import { decodeProtobufObject } from '../../test/apiserver/protobuf-body.ts';
import { leaseProtobufBody } from '../../test/support/kubelet-protobuf.ts';
import { decodeLeaseBody } from './lease-protobuf.ts';

const lease = {
  kind: 'Lease',
  apiVersion: 'coordination.k8s.io/v1',
  metadata: {
    name: 'node-a',
    namespace: 'kube-node-lease',
    uid: '3f1c',
    resourceVersion: '4711',
    creationTimestamp: '2024-05-01T09:00:00Z',
    labels: { 'kubernetes.io/hostname': 'node-a' },
    ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'node-a', uid: '9a2b' }],
  },
  spec: {
    holderIdentity: 'node-a',
    leaseDurationSeconds: 40,
    renewTime: '2024-05-01T10:00:10.123456Z',
  },
};

describe('decodeLeaseBody', () => {
  it("reads kubelet's protobuf Lease as the apiserver double's own decoder does", () => {
    // With fields neither decoder reads (managedFields), which must be skipped.
    const body = leaseProtobufBody(lease, { managedFields: 2 });
    // Field tables written apart (the double's, the hub's, the encoder's) agree on the bytes.
    expect(decodeLeaseBody(body)).toEqual(decodeProtobufObject(body));
    expect(decodeLeaseBody(body)).toEqual(lease);
  });

  it('refuses bodies it cannot read, saying why', () => {
    expect(String(decodeLeaseBody(Buffer.from('{"kind":"Lease"}')))).toContain('magic');
    expect(String(decodeLeaseBody(Buffer.from('k8s\u0000\u0012\u00ff', 'latin1')))).toContain(
      'cannot be decoded',
    );
    const other = leaseProtobufBody(lease);
    // typeMeta.kind "Lease" -> "Lexse": same length, so the envelope stays well-formed.
    const at = other.indexOf('Lease');
    other[at + 2] = 0x78;
    expect(String(decodeLeaseBody(other))).toContain('not coordination.k8s.io/v1/Lease');
  });
});
