import protobuf from 'protobufjs/minimal.js';
import { formatMicroTime, formatTime } from '../../src/kube/meta-time.ts';

/**
 * kubelet renews its node Lease in protobuf (`application/vnd.kubernetes.protobuf`,
 * its clientset's default). Offline the hub answers that PUT itself, so it
 * reads what kubelet sent, as kube-apiserver would: the resourceVersion it
 * renews from (a stale one conflicts), its renewTime, duration, holder and
 * owner reference.
 *
 * The envelope is `k8s\0` + runtime.Unknown{typeMeta, raw}; `raw` is the
 * Lease message. Field numbers are those of k8s.io/api coordination/v1 and
 * apimachinery meta/v1 generated.proto, written as data; fields not listed
 * (managedFields, …) are skipped. protobufjs's minimal Reader reads the wire
 * format; its reflection runtime is not used: it costs ~1.3 MB resident once
 * loaded and compiles decoders with `new Function`.
 */
const MAGIC = Buffer.from('k8s\u0000', 'latin1');

type JsonObject = Record<string, unknown>;
type Reader = protobuf.Reader;
/** Reads one field's value (the tag already read) into `out`. */
type FieldReader = (r: Reader, out: JsonObject) => void;
type Schema = Readonly<Record<number, FieldReader>>;

function decode(r: Reader, end: number, schema: Schema): JsonObject {
  const out: JsonObject = {};
  while (r.pos < end) {
    const tag = r.uint32();
    const read = schema[tag >>> 3];
    if (read === undefined) r.skipType(tag & 7);
    else read(r, out);
  }
  return out;
}

function message(r: Reader, schema: Schema): JsonObject {
  const length = r.uint32();
  return decode(r, r.pos + length, schema);
}

const str =
  (name: string): FieldReader =>
  (r, out) => {
    out[name] = r.string();
  };
const int32 =
  (name: string): FieldReader =>
  (r, out) => {
    out[name] = r.int32();
  };
const int64 =
  (name: string): FieldReader =>
  (r, out) => {
    out[name] = Number(r.int64());
  };
const bool =
  (name: string): FieldReader =>
  (r, out) => {
    out[name] = r.bool();
  };
const nested =
  (name: string, schema: Schema): FieldReader =>
  (r, out) => {
    out[name] = message(r, schema);
  };
const repeated =
  (name: string, read: (r: Reader) => unknown): FieldReader =>
  (r, out) => {
    const list = (out[name] ??= []) as unknown[];
    list.push(read(r));
  };
/** A map<string, string> entry (labels, annotations): key 1, value 2. */
const stringMap =
  (name: string): FieldReader =>
  (r, out) => {
    const entry = message(r, { 1: str('key'), 2: str('value') });
    const map = (out[name] ??= {}) as Record<string, unknown>;
    map[String(entry.key ?? '')] = entry.value ?? '';
  };
/** metav1.Time (whole seconds) or metav1.MicroTime (six digits), as the apiserver writes them. */
const timestamp =
  (name: string, micro: boolean): FieldReader =>
  (r, out) => {
    const t = message(r, { 1: int64('seconds'), 2: int32('nanos') });
    const seconds = Number(t.seconds ?? 0);
    out[name] = micro
      ? formatMicroTime(seconds * 1e6 + Math.floor(Number(t.nanos ?? 0) / 1000))
      : formatTime(seconds * 1000);
  };

const OWNER_REFERENCE: Schema = {
  1: str('kind'),
  3: str('name'),
  4: str('uid'),
  5: str('apiVersion'),
  6: bool('controller'),
  7: bool('blockOwnerDeletion'),
};

const OBJECT_META: Schema = {
  1: str('name'),
  2: str('generateName'),
  3: str('namespace'),
  5: str('uid'),
  6: str('resourceVersion'),
  7: int64('generation'),
  8: timestamp('creationTimestamp', false),
  11: stringMap('labels'),
  12: stringMap('annotations'),
  13: repeated('ownerReferences', (r) => message(r, OWNER_REFERENCE)),
  14: repeated('finalizers', (r) => r.string()),
};

const LEASE: Schema = {
  1: nested('metadata', OBJECT_META),
  2: nested('spec', {
    1: str('holderIdentity'),
    2: int32('leaseDurationSeconds'),
    3: timestamp('acquireTime', true),
    4: timestamp('renewTime', true),
    5: int32('leaseTransitions'),
    6: str('strategy'),
    7: str('preferredHolder'),
  }),
};

const UNKNOWN: Schema = {
  1: nested('typeMeta', { 1: str('apiVersion'), 2: str('kind') }),
  2: (r, out) => {
    out.raw = r.bytes();
  },
  3: str('contentEncoding'),
  4: str('contentType'),
};

/** The Lease as JSON: the object kube-apiserver would have decoded from kubelet's body. */
export function decodeLeaseBody(body: Buffer): JsonObject | Error {
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC)) {
    return new Error('the protobuf body does not start with the Kubernetes magic "k8s\\x00"');
  }
  try {
    const envelope = decode(
      protobuf.Reader.create(body.subarray(MAGIC.length)),
      body.length - MAGIC.length,
      UNKNOWN,
    );
    const typeMeta = (envelope.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
    if (typeof envelope.contentEncoding === 'string' && envelope.contentEncoding !== '') {
      return new Error(`unsupported protobuf content encoding ${envelope.contentEncoding}`);
    }
    if (typeMeta.apiVersion !== 'coordination.k8s.io/v1' || typeMeta.kind !== 'Lease') {
      return new Error(
        `the protobuf body is ${typeMeta.apiVersion ?? '?'}/${typeMeta.kind ?? '?'}, ` +
          'not coordination.k8s.io/v1/Lease',
      );
    }
    const raw = (envelope.raw ?? new Uint8Array()) as Uint8Array;
    const lease = decode(protobuf.Reader.create(raw), raw.length, LEASE);
    return { kind: 'Lease', apiVersion: 'coordination.k8s.io/v1', ...lease };
  } catch (err) {
    return new Error(`the protobuf body cannot be decoded: ${(err as Error).message}`);
  }
}
