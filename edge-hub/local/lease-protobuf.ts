import protobuf from 'protobufjs/light.js';

/**
 * kubelet renews its node Lease in protobuf (`application/vnd.kubernetes.protobuf`,
 * its clientset's default). Offline the hub answers that PUT itself, so it
 * reads what kubelet sent, as kube-apiserver would: the resourceVersion it
 * renews from (a stale one conflicts), its renewTime, duration, holder and
 * owner reference.
 *
 * The envelope is `k8s\0` + runtime.Unknown{typeMeta, raw}; `raw` is the
 * Lease message. Field numbers are those of k8s.io/api coordination/v1 and
 * apimachinery meta/v1 generated.proto; fields not listed here (managedFields,
 * …) are skipped, as the apiserver would drop them from a kubelet write anyway.
 */
const MAGIC = Buffer.from('k8s\u0000', 'latin1');

/** A map<string, string> field (labels, annotations). */
const stringMap = (id: number): protobuf.IMapField => ({ keyType: 'string', type: 'string', id });

const time = { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } };

export const leaseProtobuf = protobuf.Root.fromJSON({
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
        generateName: { type: 'string', id: 2 },
        namespace: { type: 'string', id: 3 },
        uid: { type: 'string', id: 5 },
        resourceVersion: { type: 'string', id: 6 },
        generation: { type: 'int64', id: 7 },
        creationTimestamp: { type: 'Time', id: 8 },
        labels: stringMap(11),
        annotations: stringMap(12),
        ownerReferences: { rule: 'repeated', type: 'OwnerReference', id: 13 },
        finalizers: { rule: 'repeated', type: 'string', id: 14 },
      },
    },
    LeaseSpec: {
      fields: {
        holderIdentity: { type: 'string', id: 1 },
        leaseDurationSeconds: { type: 'int32', id: 2 },
        acquireTime: { type: 'MicroTime', id: 3 },
        renewTime: { type: 'MicroTime', id: 4 },
        leaseTransitions: { type: 'int32', id: 5 },
        strategy: { type: 'string', id: 6 },
        preferredHolder: { type: 'string', id: 7 },
      },
    },
    Lease: {
      fields: {
        metadata: { type: 'ObjectMeta', id: 1 },
        spec: { type: 'LeaseSpec', id: 2 },
      },
    },
  },
});

const UNKNOWN = leaseProtobuf.lookupType('Unknown');
const LEASE = leaseProtobuf.lookupType('Lease');

type JsonObject = Record<string, unknown>;
interface Timestamp {
  seconds?: number;
  nanos?: number;
}

/** metav1.Time (whole seconds) or metav1.MicroTime (six digits), as the apiserver writes them. */
function timestamp(t: Timestamp, micro: boolean): string {
  const iso = new Date((t.seconds ?? 0) * 1000).toISOString();
  if (!micro) return iso.replace(/\.\d{3}Z$/, 'Z');
  const micros = String(Math.floor((t.nanos ?? 0) / 1000)).padStart(6, '0');
  return iso.replace(/\.\d{3}Z$/, `.${micros}Z`);
}

/** The Lease as JSON: the object kube-apiserver would have decoded from kubelet's body. */
export function decodeLeaseBody(body: Buffer): JsonObject | Error {
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC)) {
    return new Error('the protobuf body does not start with the Kubernetes magic "k8s\\x00"');
  }
  let envelope: {
    typeMeta?: { apiVersion?: string; kind?: string };
    raw?: Uint8Array;
    contentEncoding?: string;
  };
  let lease: { metadata?: JsonObject & { creationTimestamp?: Timestamp }; spec?: JsonObject };
  try {
    envelope = UNKNOWN.toObject(UNKNOWN.decode(body.subarray(MAGIC.length)));
    if (envelope.contentEncoding !== undefined && envelope.contentEncoding !== '') {
      return new Error(`unsupported protobuf content encoding ${envelope.contentEncoding}`);
    }
    const { apiVersion, kind } = envelope.typeMeta ?? {};
    if (apiVersion !== 'coordination.k8s.io/v1' || kind !== 'Lease') {
      return new Error(
        `the protobuf body is ${apiVersion ?? '?'}/${kind ?? '?'}, not coordination.k8s.io/v1/Lease`,
      );
    }
    lease = LEASE.toObject(LEASE.decode(envelope.raw ?? new Uint8Array()), {
      longs: Number,
      arrays: false,
      objects: false,
    });
  } catch (err) {
    return new Error(`the protobuf body cannot be decoded: ${(err as Error).message}`);
  }
  const metadata: JsonObject = { ...lease.metadata };
  if (lease.metadata?.creationTimestamp !== undefined) {
    metadata.creationTimestamp = timestamp(lease.metadata.creationTimestamp, false);
  }
  const spec: JsonObject = { ...lease.spec };
  for (const field of ['acquireTime', 'renewTime'] as const) {
    const t = lease.spec?.[field] as Timestamp | undefined;
    if (t !== undefined) spec[field] = timestamp(t, true);
  }
  return { kind: 'Lease', apiVersion: 'coordination.k8s.io/v1', metadata, spec };
}
