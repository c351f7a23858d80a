import { z } from 'zod';

/**
 * Values of the small records next to the raw objects (README.md, "Key
 * layout"). Scope, resource and tombstone records are decoded with zod; the
 * per-object meta record is decoded by hand because a cold start may read a
 * hundred thousand of them and zod costs several microseconds each.
 */

/** What the cache knows about an object without reading its JSON. */
export interface ObjectMeta {
  /** resourceVersion of the stored copy */
  rv: string;
  /** resourceVersion at which the cache first saw the object (ADDED vs MODIFIED on replay) */
  frv: string;
  labels: Record<string, string> | undefined;
  /** selectable fields (fieldsOf), e.g. spec.nodeName */
  fields: Record<string, string>;
  /** acknowledged locally while offline: any upstream copy replaces it */
  local: boolean;
}

function isStringRecord(value: unknown): value is Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  for (const v of Object.values(value)) if (typeof v !== 'string') return false;
  return true;
}

export function encodeMeta(meta: ObjectMeta): Buffer {
  const record: Record<string, unknown> = { r: meta.rv, f: meta.frv, x: meta.fields };
  if (meta.labels !== undefined) record.l = meta.labels;
  if (meta.local) record.o = 1;
  return Buffer.from(JSON.stringify(record));
}

export function decodeMeta(value: Uint8Array): ObjectMeta | Error {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString());
  } catch (err) {
    return new Error(`object meta record is not JSON: ${String(err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null)
    return new Error('object meta record is not an object');
  const r = parsed as { r?: unknown; f?: unknown; l?: unknown; x?: unknown; o?: unknown };
  if (typeof r.r !== 'string' || typeof r.f !== 'string' || !isStringRecord(r.x)) {
    return new Error('object meta record lacks rv, frv or fields');
  }
  if (r.l !== undefined && !isStringRecord(r.l))
    return new Error('object meta labels are not strings');
  return { rv: r.r, frv: r.f, fields: r.x, labels: r.l, local: r.o === 1 };
}

export const scopeRecordSchema = z.object({
  namespace: z.string(),
  labelSelector: z.string(),
  fieldSelector: z.string(),
  resourceVersion: z.string(),
  /** a LIST of this scope was recorded: the cache knows its whole content */
  complete: z.boolean(),
  syncedAt: z.string().nullable(),
});
export type ScopeRecord = z.infer<typeof scopeRecordSchema>;

/** `x/<txid>`: a scope is being replaced from staged items (list-staging.ts); redone at open. */
export const listIntentSchema = z.object({
  component: z.string(),
  group: z.string(),
  version: z.string(),
  resource: z.string(),
  namespace: z.string(),
  labelSelector: z.string(),
  fieldSelector: z.string(),
  resourceVersion: z.string(),
  kind: z.string().nullable(),
});
export type ListIntent = z.infer<typeof listIntentSchema>;

export const resourceRecordSchema = z.object({
  kind: z.string().nullable(),
  objects: z.number().int().nonnegative(),
  lastSync: z.string().nullable(),
});
export type ResourceRecord = z.infer<typeof resourceRecordSchema>;

export const tombstoneRecordSchema = z.object({
  rv: z.string(),
  deletedAt: z.string(),
  labels: z.record(z.string(), z.string()).optional(),
  fields: z.record(z.string(), z.string()).optional(),
});
export type TombstoneRecord = z.infer<typeof tombstoneRecordSchema>;

export const tokenRecordSchema = z.object({
  /** the TokenRequest object upstream answered, as JSON text */
  response: z.string(),
  expirationTimestamp: z.string(),
  storedAt: z.string(),
});
export type TokenRecord = z.infer<typeof tokenRecordSchema>;

/**
 * The store this one replaced could not be opened and was moved aside: the
 * node lost what it had cached. Kept so offline errors, `/readyz` and `hub
 * status` can say so for as long as an operator may wonder why the node
 * knows nothing.
 */
export const cacheLossSchema = z.object({
  movedTo: z.string(),
  at: z.string(),
  reason: z.string(),
});
export type CacheLoss = z.infer<typeof cacheLossSchema>;

export function encodeRecord(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

export function decodeRecord<T>(schema: z.ZodType<T>, value: Uint8Array, what: string): T | Error {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString());
  } catch (err) {
    return new Error(`${what} is not JSON: ${String(err)}`);
  }
  const result = schema.safeParse(parsed);
  return result.success ? result.data : new Error(`${what} is malformed: ${result.error.message}`);
}
