import protobuf from 'protobufjs/light.js';

/**
 * kubelet's protobuf encoding of a Lease, made with protobufjs's reflection
 * from a field table of its own (k8s.io/api coordination/v1 and apimachinery
 * meta/v1 generated.proto): independent of both decoders it is checked
 * against, the hub's (edge-hub/local/lease-protobuf.ts) and the API double's.
 */
const stringMap = (id: number): protobuf.IMapField => ({ keyType: 'string', type: 'string', id });
const time = { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } };

const types = protobuf.Root.fromJSON({
  nested: {
    Unknown: {
      fields: {
        typeMeta: { type: 'TypeMeta', id: 1 },
        raw: { type: 'bytes', id: 2 },
        contentEncoding: { type: 'string', id: 3 },
        contentType: { type: 'string', id: 4 },
      },
    },
    TypeMeta: {
      fields: { apiVersion: { type: 'string', id: 1 }, kind: { type: 'string', id: 2 } },
    },
    Time: time,
    MicroTime: time,
    OwnerReference: {
      fields: {
        kind: { type: 'string', id: 1 },
        name: { type: 'string', id: 3 },
        uid: { type: 'string', id: 4 },
        apiVersion: { type: 'string', id: 5 },
        controller: { type: 'bool', id: 6 },
        blockOwnerDeletion: { type: 'bool', id: 7 },
      },
    },
    ObjectMeta: {
      fields: {
        name: { type: 'string', id: 1 },
        namespace: { type: 'string', id: 3 },
        uid: { type: 'string', id: 5 },
        resourceVersion: { type: 'string', id: 6 },
        creationTimestamp: { type: 'Time', id: 8 },
        labels: stringMap(11),
        annotations: stringMap(12),
        ownerReferences: { rule: 'repeated', type: 'OwnerReference', id: 13 },
        // managedFields: the decoders must skip what they do not read.
        managedFields: { rule: 'repeated', type: 'TypeMeta', id: 17 },
      },
    },
    LeaseSpec: {
      fields: {
        holderIdentity: { type: 'string', id: 1 },
        leaseDurationSeconds: { type: 'int32', id: 2 },
        acquireTime: { type: 'MicroTime', id: 3 },
        renewTime: { type: 'MicroTime', id: 4 },
        leaseTransitions: { type: 'int32', id: 5 },
      },
    },
    Lease: {
      fields: { metadata: { type: 'ObjectMeta', id: 1 }, spec: { type: 'LeaseSpec', id: 2 } },
    },
  },
});

/** A metav1.Time / MicroTime string as protobuf's {seconds, nanos}. */
function timestamp(text: string): { seconds: number; nanos: number } {
  const fraction = /\.(\d+)Z$/.exec(text)?.[1] ?? '';
  return {
    seconds: Math.floor(Date.parse(text) / 1000),
    nanos: Number(fraction.padEnd(9, '0').slice(0, 9)),
  };
}

export interface LeaseJson {
  metadata: Record<string, unknown> & { creationTimestamp?: string };
  spec: Record<string, unknown> & { renewTime?: string; acquireTime?: string };
}

/** `k8s\0` + runtime.Unknown{typeMeta, raw = the Lease message}, as kubelet's clientset writes it. */
export function leaseProtobufBody(
  lease: LeaseJson,
  extra: { managedFields?: number } = {},
): Buffer {
  const { creationTimestamp, ...meta } = lease.metadata;
  const { renewTime, acquireTime, ...spec } = lease.spec;
  const Lease = types.lookupType('Lease');
  const raw = Lease.encode(
    Lease.fromObject({
      metadata: {
        ...meta,
        ...(creationTimestamp === undefined
          ? {}
          : { creationTimestamp: timestamp(creationTimestamp) }),
        managedFields: Array.from({ length: extra.managedFields ?? 0 }, () => ({
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'FieldsV1',
        })),
      },
      spec: {
        ...spec,
        ...(renewTime === undefined ? {} : { renewTime: timestamp(renewTime) }),
        ...(acquireTime === undefined ? {} : { acquireTime: timestamp(acquireTime) }),
      },
    }),
  ).finish();
  const Unknown = types.lookupType('Unknown');
  const envelope = Unknown.encode(
    Unknown.fromObject({
      typeMeta: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' },
      raw,
    }),
  ).finish();
  return Buffer.concat([Buffer.from('k8s\u0000', 'latin1'), envelope]);
}
