import { formatTimestamp, type JsonObject } from './object-meta.ts';

/**
 * Decodes request bodies sent as `application/vnd.kubernetes.protobuf`, for
 * the kinds typed Go clients write that way: kubectl's generator
 * subcommands (`create namespace|configmap|secret|serviceaccount|token`,
 * drain's evictions) and kubelet's small writes (leases, events, CSINodes,
 * DeleteOptions). Field numbers are those of k8s.io/api and apimachinery
 * generated.proto (v1.32), written as data. Pods and Nodes are not decoded.
 *
 * The envelope is `k8s\0` + runtime.Unknown{typeMeta, raw}; `raw` is the
 * object's message. Answers are always JSON, which these clients accept.
 */

type Scalar = 'string' | 'bytes' | 'bool' | 'int32' | 'int64';
type FieldKind =
  Scalar | 'time' | 'microtime' | { message: MessageSchema } | { map: 'string' | 'bytes' };

interface Field {
  json: string;
  kind: FieldKind;
  repeated?: boolean;
}

type MessageSchema = Readonly<Record<number, Field>>;

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

export class ProtobufDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtobufDecodeError';
  }
}

const f = (json: string, kind: FieldKind, repeated = false): Field => ({ json, kind, repeated });
const msg = (schema: MessageSchema) => ({ message: schema });

const OWNER_REFERENCE: MessageSchema = {
  1: f('kind', 'string'),
  3: f('name', 'string'),
  4: f('uid', 'string'),
  5: f('apiVersion', 'string'),
  6: f('controller', 'bool'),
  7: f('blockOwnerDeletion', 'bool'),
};

const OBJECT_META: MessageSchema = {
  1: f('name', 'string'),
  2: f('generateName', 'string'),
  3: f('namespace', 'string'),
  5: f('uid', 'string'),
  6: f('resourceVersion', 'string'),
  7: f('generation', 'int64'),
  8: f('creationTimestamp', 'time'),
  9: f('deletionTimestamp', 'time'),
  10: f('deletionGracePeriodSeconds', 'int64'),
  11: f('labels', { map: 'string' }),
  12: f('annotations', { map: 'string' }),
  13: f('ownerReferences', msg(OWNER_REFERENCE), true),
  14: f('finalizers', 'string', true),
};

const OBJECT_REFERENCE: MessageSchema = {
  1: f('kind', 'string'),
  2: f('namespace', 'string'),
  3: f('name', 'string'),
  4: f('uid', 'string'),
  5: f('apiVersion', 'string'),
  6: f('resourceVersion', 'string'),
  7: f('fieldPath', 'string'),
};

const DELETE_OPTIONS: MessageSchema = {
  1: f('gracePeriodSeconds', 'int64'),
  2: f('preconditions', msg({ 1: f('uid', 'string'), 2: f('resourceVersion', 'string') })),
  3: f('orphanDependents', 'bool'),
  4: f('propagationPolicy', 'string'),
  5: f('dryRun', 'string', true),
};

const META = f('metadata', msg(OBJECT_META));

/** By `apiVersion/kind` of the envelope's TypeMeta. */
const KINDS: Record<string, MessageSchema> = {
  'v1/Namespace': {
    1: META,
    2: f('spec', msg({ 1: f('finalizers', 'string', true) })),
    3: f('status', msg({ 1: f('phase', 'string') })),
  },
  'v1/ConfigMap': {
    1: META,
    2: f('data', { map: 'string' }),
    3: f('binaryData', { map: 'bytes' }),
    4: f('immutable', 'bool'),
  },
  'v1/Secret': {
    1: META,
    2: f('data', { map: 'bytes' }),
    3: f('type', 'string'),
    4: f('stringData', { map: 'string' }),
    5: f('immutable', 'bool'),
  },
  'v1/ServiceAccount': {
    1: META,
    2: f('secrets', msg(OBJECT_REFERENCE), true),
    3: f('imagePullSecrets', msg({ 1: f('name', 'string') }), true),
    4: f('automountServiceAccountToken', 'bool'),
  },
  'v1/Binding': { 1: META, 2: f('target', msg(OBJECT_REFERENCE)) },
  'v1/Event': {
    1: META,
    2: f('involvedObject', msg(OBJECT_REFERENCE)),
    3: f('reason', 'string'),
    4: f('message', 'string'),
    5: f('source', msg({ 1: f('component', 'string'), 2: f('host', 'string') })),
    6: f('firstTimestamp', 'time'),
    7: f('lastTimestamp', 'time'),
    8: f('count', 'int32'),
    9: f('type', 'string'),
    10: f('eventTime', 'microtime'),
    11: f('series', msg({ 1: f('count', 'int32'), 2: f('lastObservedTime', 'microtime') })),
    12: f('action', 'string'),
    13: f('related', msg(OBJECT_REFERENCE)),
    14: f('reportingComponent', 'string'),
    15: f('reportingInstance', 'string'),
  },
  'v1/DeleteOptions': DELETE_OPTIONS,
  'meta.k8s.io/v1/DeleteOptions': DELETE_OPTIONS,
  'authentication.k8s.io/v1/TokenRequest': {
    1: META,
    2: f(
      'spec',
      msg({
        1: f('audiences', 'string', true),
        3: f(
          'boundObjectRef',
          msg({
            1: f('kind', 'string'),
            2: f('apiVersion', 'string'),
            3: f('name', 'string'),
            4: f('uid', 'string'),
          }),
        ),
        4: f('expirationSeconds', 'int64'),
      }),
    ),
  },
  'policy/v1/Eviction': { 1: META, 2: f('deleteOptions', msg(DELETE_OPTIONS)) },
  'coordination.k8s.io/v1/Lease': {
    1: META,
    2: f(
      'spec',
      msg({
        1: f('holderIdentity', 'string'),
        2: f('leaseDurationSeconds', 'int32'),
        3: f('acquireTime', 'microtime'),
        4: f('renewTime', 'microtime'),
        5: f('leaseTransitions', 'int32'),
        6: f('strategy', 'string'),
        7: f('preferredHolder', 'string'),
      }),
    ),
  },
  'storage.k8s.io/v1/CSINode': {
    1: META,
    2: f(
      'spec',
      msg({
        1: f(
          'drivers',
          msg({
            1: f('name', 'string'),
            2: f('nodeID', 'string'),
            3: f('topologyKeys', 'string', true),
            4: f('allocatable', msg({ 1: f('count', 'int32') })),
          }),
          true,
        ),
      }),
    ),
  },
};

class Reader {
  readonly #buf: Buffer;
  pos: number;
  readonly end: number;

  constructor(buf: Buffer, start = 0, end = buf.length) {
    this.#buf = buf;
    this.pos = start;
    this.end = end;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) throw new ProtobufDecodeError('truncated varint');
      const b = this.#buf[this.pos++] ?? 0;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
      if (shift > 70n) throw new ProtobufDecodeError('varint too long');
    }
  }

  bytes(): Buffer {
    const len = Number(this.varint());
    if (this.pos + len > this.end)
      throw new ProtobufDecodeError('truncated length-delimited field');
    const out = this.#buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.pos += 4;
    else throw new ProtobufDecodeError(`unsupported wire type ${wireType}`);
  }
}

function toInt(v: bigint, bits: 32 | 64): number {
  return Number(BigInt.asIntN(bits, v));
}

function decodeTime(buf: Buffer, micro: boolean): string {
  const t = decodeMessage(buf, { 1: f('seconds', 'int64'), 2: f('nanos', 'int32') });
  const seconds = typeof t.seconds === 'number' ? t.seconds : 0;
  const nanos = typeof t.nanos === 'number' ? t.nanos : 0;
  if (!micro) return formatTimestamp(seconds * 1000);
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  return `${base}.${String(Math.floor(nanos / 1000)).padStart(6, '0')}Z`;
}

function readValue(reader: Reader, kind: FieldKind, wireType: number): unknown {
  if (typeof kind === 'string') {
    switch (kind) {
      case 'string':
        return reader.bytes().toString('utf8');
      case 'bytes':
        return reader.bytes().toString('base64');
      case 'bool':
        return reader.varint() !== 0n;
      case 'int32':
        return toInt(reader.varint(), 32);
      case 'int64':
        return toInt(reader.varint(), 64);
      case 'time':
        return decodeTime(reader.bytes(), false);
      case 'microtime':
        return decodeTime(reader.bytes(), true);
    }
  }
  if (wireType !== 2)
    throw new ProtobufDecodeError(`expected a length-delimited field, got wire type ${wireType}`);
  if ('message' in kind) return decodeMessage(reader.bytes(), kind.message);
  const entry = decodeMessage(reader.bytes(), { 1: f('key', 'string'), 2: f('value', kind.map) });
  return [String(entry.key ?? ''), entry.value ?? (kind.map === 'bytes' ? '' : '')];
}

function decodeMessage(buf: Buffer, schema: MessageSchema): JsonObject {
  const reader = new Reader(buf);
  const out: JsonObject = {};
  while (reader.pos < reader.end) {
    const key = Number(reader.varint());
    const fieldNo = key >>> 3;
    const wireType = key & 7;
    const field = schema[fieldNo];
    if (field === undefined) {
      reader.skip(wireType);
      continue;
    }
    const value = readValue(reader, field.kind, wireType);
    if (typeof field.kind === 'object' && 'map' in field.kind) {
      const [k, v] = value as [string, unknown];
      const map = (out[field.json] ??= {}) as JsonObject;
      map[k] = v;
    } else if (field.repeated === true) {
      ((out[field.json] ??= []) as unknown[]).push(value);
    } else {
      out[field.json] = value;
    }
  }
  return out;
}

/** Decodes a `k8s\0`-framed protobuf object into its JSON form, apiVersion and kind included. */
export function decodeProtobufObject(body: Buffer): JsonObject {
  if (body.length < MAGIC.length || !body.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new ProtobufDecodeError(
      'the body does not start with the Kubernetes protobuf magic "k8s\\x00"',
    );
  }
  const unknown = decodeMessage(body.subarray(MAGIC.length), {
    1: f('typeMeta', msg({ 1: f('apiVersion', 'string'), 2: f('kind', 'string') })),
    2: f('raw', 'bytes'),
    3: f('contentEncoding', 'string'),
  });
  const typeMeta = (unknown.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const apiVersion = typeMeta.apiVersion ?? '';
  const kind = typeMeta.kind ?? '';
  if (typeof unknown.contentEncoding === 'string' && unknown.contentEncoding !== '') {
    throw new ProtobufDecodeError(`unsupported content encoding ${unknown.contentEncoding}`);
  }
  const schema = KINDS[`${apiVersion}/${kind}`];
  if (schema === undefined) {
    throw new ProtobufDecodeError(
      `the double cannot decode protobuf bodies of ${apiVersion}/${kind}; send JSON`,
    );
  }
  const raw = Buffer.from(typeof unknown.raw === 'string' ? unknown.raw : '', 'base64');
  return { apiVersion, kind, ...decodeMessage(raw, schema) };
}
