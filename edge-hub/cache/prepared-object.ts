import { z } from 'zod';
import { fieldsOf } from '../../src/kube/selectors.ts';
import { objectId, type ResourceRef } from './keys.ts';

/** The least an apiserver object must carry for the cache to store it. */
export const kubeObjectSchema = z.looseObject({
  kind: z.string().optional(),
  apiVersion: z.string().optional(),
  metadata: z.looseObject({
    name: z.string().min(1),
    namespace: z.string().optional(),
    resourceVersion: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
  }),
});
export type KubeObject = z.infer<typeof kubeObjectSchema>;

/** An object ready to be written: its raw JSON plus what the indexes need. */
export interface PreparedObject {
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
  readonly rv: string;
  readonly raw: Buffer;
  readonly labels: Record<string, string> | undefined;
  readonly fields: Record<string, string>;
}

/**
 * Validates one object from an upstream answer and serialises it with `kind`
 * and `apiVersion` first (list items arrive without them; a GET must return
 * them offline).
 */
export function prepareObject(
  ref: ResourceRef,
  value: unknown,
  identity: { kind: string | undefined; apiVersion: string },
  /** the object's JSON exactly as received, when it already carries kind and apiVersion */
  received?: Buffer,
): PreparedObject | Error {
  const parsed = kubeObjectSchema.safeParse(value);
  if (!parsed.success) {
    return new Error(`not a Kubernetes object: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  }
  const obj = parsed.data;
  const kind = obj.kind ?? identity.kind;
  const withIdentity =
    obj.kind !== undefined && obj.apiVersion !== undefined
      ? (value as object)
      : { kind, apiVersion: obj.apiVersion ?? identity.apiVersion, ...(value as object) };
  const namespace = obj.metadata.namespace ?? '';
  return {
    id: objectId(namespace, obj.metadata.name),
    namespace,
    name: obj.metadata.name,
    rv: obj.metadata.resourceVersion ?? '',
    raw:
      received !== undefined && withIdentity === value
        ? received
        : Buffer.from(JSON.stringify(withIdentity)),
    labels: obj.metadata.labels,
    fields: fieldsOf(ref.group, ref.resource, value),
  };
}
