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

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isOptionalString(v: unknown): boolean {
  return v === undefined || typeof v === 'string';
}

function isStringMap(v: unknown): boolean {
  if (!isRecord(v)) return false;
  for (const key in v) if (typeof v[key] !== 'string') return false;
  return true;
}

/**
 * kubeObjectSchema's rules checked in place: zod copies every object it
 * parses, which at thousands of watch events a second is most of what
 * preparing an object costs. Anything this refuses goes through the schema,
 * which says why.
 */
function asKubeObject(value: unknown): KubeObject | undefined {
  if (!isRecord(value) || !isOptionalString(value.kind) || !isOptionalString(value.apiVersion)) {
    return undefined;
  }
  const m = value.metadata;
  if (!isRecord(m) || typeof m.name !== 'string' || m.name === '') return undefined;
  if (!isOptionalString(m.namespace) || !isOptionalString(m.resourceVersion)) return undefined;
  if (m.labels !== undefined && !isStringMap(m.labels)) return undefined;
  return value as KubeObject;
}

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
  let obj = asKubeObject(value);
  if (obj === undefined) {
    const parsed = kubeObjectSchema.safeParse(value);
    if (!parsed.success) {
      return new Error(`not a Kubernetes object: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    }
    obj = parsed.data;
  }
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
