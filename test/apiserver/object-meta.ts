import { randomInt } from 'node:crypto';
import { z } from 'zod';
import { invalid, type KubeStatus } from '../../src/kube/status.ts';
import type { NameRule, ResourceType } from './resource-types.ts';

/** Any JSON object. The double stores objects as the client sent them, plus what the server sets. */
export type JsonObject = Record<string, unknown>;

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  [field: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** A failed API call: carries the Status the apiserver would answer with. */
export class StatusError extends Error {
  readonly status: KubeStatus;
  constructor(status: KubeStatus) {
    super(status.message);
    this.name = 'StatusError';
    this.status = status;
  }
}

const stringMap = z.record(z.string(), z.string());

/**
 * The shape of `metadata` the apiserver decodes: wrong types are rejected at
 * decode time (400), everything else passes through.
 */
export const objectMetaSchema = z.looseObject({
  name: z.string().optional(),
  generateName: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().int().optional(),
  creationTimestamp: z.string().nullable().optional(),
  deletionTimestamp: z.string().nullable().optional(),
  deletionGracePeriodSeconds: z.number().int().nullable().optional(),
  labels: stringMap.nullable().optional(),
  annotations: stringMap.nullable().optional(),
  finalizers: z.array(z.string()).nullable().optional(),
  ownerReferences: z
    .array(
      z.looseObject({
        apiVersion: z.string(),
        kind: z.string(),
        name: z.string(),
        uid: z.string(),
        controller: z.boolean().optional(),
        blockOwnerDeletion: z.boolean().optional(),
      }),
    )
    .nullable()
    .optional(),
});

export const kubeObjectSchema = z.looseObject({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: objectMetaSchema.optional(),
});

/**
 * Decodes a request body into an object, as the apiserver's JSON decoder
 * would: null fields in metadata are dropped (Go decodes them to zero values).
 */
export function decodeObject(value: unknown): KubeObject | string {
  const parsed = kubeObjectSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined ? '' : issue.path.join('.');
    return `unable to decode object: ${where === '' ? '' : `${where}: `}${issue?.message ?? 'invalid'}`;
  }
  const obj = value as KubeObject;
  const meta: ObjectMeta = { ...(parsed.data.metadata ?? {}) } as ObjectMeta;
  for (const key of Object.keys(meta)) if (meta[key] === null) delete meta[key];
  obj.metadata = meta;
  return obj;
}

/** `2006-01-02T15:04:05Z`: metav1.Time has second precision on the wire. */
export function formatTimestamp(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

// The apiserver's generateName alphabet: no vowels, no look-alike digits.
const NAME_SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
const MAX_GENERATED_NAME_LENGTH = 63;
const RANDOM_SUFFIX_LENGTH = 5;

export function generateName(base: string): string {
  const prefix =
    base.length > MAX_GENERATED_NAME_LENGTH - RANDOM_SUFFIX_LENGTH
      ? base.slice(0, MAX_GENERATED_NAME_LENGTH - RANDOM_SUFFIX_LENGTH)
      : base;
  let suffix = '';
  for (let i = 0; i < RANDOM_SUFFIX_LENGTH; i++) {
    suffix += NAME_SUFFIX_ALPHABET[randomInt(NAME_SUFFIX_ALPHABET.length)];
  }
  return prefix + suffix;
}

const DNS1123_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1123_SUBDOMAIN = `${DNS1123_LABEL}(\\.${DNS1123_LABEL})*`;
const DNS1035_LABEL = '[a-z]([-a-z0-9]*[a-z0-9])?';

// The messages are apimachinery's validation messages, word for word.
const NAME_RULES: Record<NameRule, { pattern: RegExp; max: number; message: string }> = {
  subdomain: {
    pattern: new RegExp(`^${DNS1123_SUBDOMAIN}$`),
    max: 253,
    message: `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '${DNS1123_SUBDOMAIN}')`,
  },
  label: {
    pattern: new RegExp(`^${DNS1123_LABEL}$`),
    max: 63,
    message: `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '${DNS1123_LABEL}')`,
  },
  'dns1035-label': {
    pattern: new RegExp(`^${DNS1035_LABEL}$`),
    max: 63,
    message: `a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '${DNS1035_LABEL}')`,
  },
  'path-segment': {
    pattern: /^(?!\.\.?$)[^/%]+$/,
    max: 253,
    message: `may not be '.' or '..' and may not contain '/' or '%'`,
  },
};

export interface FieldError {
  field: string;
  message: string;
  reason: string;
}

export function validateName(rule: NameRule, name: string, field = 'metadata.name'): FieldError[] {
  const r = NAME_RULES[rule];
  const errors: FieldError[] = [];
  if (name.length > r.max) {
    errors.push({
      field,
      reason: 'FieldValueInvalid',
      message: `Invalid value: ${JSON.stringify(name)}: must be no more than ${r.max} characters`,
    });
  }
  if (!r.pattern.test(name)) {
    errors.push({
      field,
      reason: 'FieldValueInvalid',
      message: `Invalid value: ${JSON.stringify(name)}: ${r.message}`,
    });
  }
  return errors;
}

export function invalidObject(type: ResourceType, name: string, errors: FieldError[]): StatusError {
  return new StatusError(invalid(type.kind, type.group, name, errors));
}

export function objectKey(namespace: string, name: string): string {
  return namespace === '' ? name : `${namespace}/${name}`;
}

/** A deep copy through JSON: what a client would get on the wire. */
export function cloneObject<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
