import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/**
 * protobuf messages of the shim's wire: the ttrpc envelope, containerd's task
 * API and task events, and the cgroup Metrics, from the .proto files beside
 * this module (written for edgebox with the public field numbers). Decoded
 * messages are plain objects: 64-bit integers as numbers, enums as numbers,
 * absent fields at their proto3 defaults.
 */
const protoDir = fileURLToPath(new URL('./proto/', import.meta.url));

const root = new protobuf.Root();
root.resolvePath = (_origin, target) =>
  target.startsWith('google/protobuf/') ? target : `${protoDir}${target}`;
root.loadSync(['ttrpc.proto', 'task.proto', 'events.proto', 'metrics.proto'], { keepCase: true });
root.resolveAll();

export type Message = Record<string, unknown>;

export interface MessageCodec<T extends Message = Message> {
  readonly name: string;
  encode(value: T): Buffer;
  decode(bytes: Uint8Array): T;
}

/** The codec of one message type by its full name (e.g. "containerd.task.v2.CreateTaskRequest"). */
export function codecFor<T extends Message = Message>(name: string): MessageCodec<T> {
  const type = root.lookupType(name);
  return {
    name,
    encode(value) {
      const invalid = type.verify(value);
      if (invalid) throw new Error(`${name}: ${invalid}`);
      return Buffer.from(type.encode(type.fromObject(value)).finish());
    },
    decode(bytes) {
      return type.toObject(type.decode(bytes), {
        longs: Number,
        enums: Number,
        bytes: Buffer,
        defaults: true,
        arrays: true,
        objects: true,
      }) as T;
    },
  };
}

export interface Timestamp extends Message {
  seconds: number;
  nanos: number;
}

export function timestamp(date: Date): Timestamp {
  const ms = date.getTime();
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}

export interface Any extends Message {
  type_url: string;
  value: Buffer;
}
