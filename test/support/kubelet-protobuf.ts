import { leaseProtobuf } from '../../edge-hub/local/lease-protobuf.ts';

/** A metav1.Time / MicroTime string as protobuf's {seconds, nanos}. */
function timestamp(text: string): { seconds: number; nanos: number } {
  const ms = Date.parse(text);
  const fraction = /\.(\d+)Z$/.exec(text)?.[1] ?? '';
  return { seconds: Math.floor(ms / 1000), nanos: Number(fraction.padEnd(9, '0').slice(0, 9)) };
}

interface LeaseJson {
  metadata: Record<string, unknown> & { creationTimestamp?: string };
  spec: Record<string, unknown> & { renewTime?: string; acquireTime?: string };
}

/**
 * A Lease as kubelet's clientset writes it (`application/vnd.kubernetes.protobuf`):
 * `k8s\0` + runtime.Unknown{typeMeta, raw = the Lease message}.
 */
export function leaseProtobufBody(lease: LeaseJson): Buffer {
  const { creationTimestamp, ...meta } = lease.metadata;
  const { renewTime, acquireTime, ...spec } = lease.spec;
  const message = leaseProtobuf.lookupType('Lease').fromObject({
    metadata: {
      ...meta,
      ...(creationTimestamp === undefined
        ? {}
        : { creationTimestamp: timestamp(creationTimestamp) }),
    },
    spec: {
      ...spec,
      ...(renewTime === undefined ? {} : { renewTime: timestamp(renewTime) }),
      ...(acquireTime === undefined ? {} : { acquireTime: timestamp(acquireTime) }),
    },
  });
  const raw = leaseProtobuf.lookupType('Lease').encode(message).finish();
  const unknown = leaseProtobuf.lookupType('Unknown');
  const envelope = unknown
    .encode(
      unknown.fromObject({
        typeMeta: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease' },
        raw,
      }),
    )
    .finish();
  return Buffer.concat([Buffer.from('k8s\u0000', 'latin1'), envelope]);
}
