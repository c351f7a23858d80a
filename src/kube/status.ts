import type { ServerResponse } from 'node:http';

/**
 * Kubernetes `Status` objects exactly as kube-apiserver writes them
 * (k8s.io/apimachinery/pkg/api/errors). kubectl and client-go decide what to
 * do from `code` and `reason`, and print `message`, so all three must match.
 */
export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Gone'
  | 'Expired'
  | 'Invalid'
  | 'MethodNotAllowed'
  | 'NotAcceptable'
  | 'RequestEntityTooLarge'
  | 'UnsupportedMediaType'
  | 'TooManyRequests'
  | 'InternalError'
  | 'ServiceUnavailable'
  | 'Timeout'
  | '';

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface KubeStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message: string;
  reason?: StatusReason;
  details?: StatusDetails;
  code: number;
}

/** The resource a Status speaks of, as apimachinery's GroupResource. */
export interface GroupResource {
  group: string;
  resource: string;
}

function failure(
  code: number,
  reason: StatusReason,
  message: string,
  details?: StatusDetails,
): KubeStatus {
  const status: KubeStatus = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    code,
  };
  if (reason !== '') status.reason = reason;
  if (details !== undefined) status.details = details;
  return status;
}

/** `pods` or `leases.coordination.k8s.io`, as the apiserver names resources in messages. */
export function qualifiedResource(gr: GroupResource): string {
  return gr.group === '' ? gr.resource : `${gr.resource}.${gr.group}`;
}

function objectDetails(gr: GroupResource, name: string): StatusDetails {
  const details: StatusDetails = { name, kind: gr.resource };
  if (gr.group !== '') details.group = gr.group;
  return details;
}

export function successStatus(details?: StatusDetails): KubeStatus {
  const s: KubeStatus = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    message: '',
    code: 200,
  };
  if (details !== undefined) s.details = details;
  return s;
}

export function badRequest(message: string): KubeStatus {
  return failure(400, 'BadRequest', message);
}

export function unauthorized(message = 'Unauthorized'): KubeStatus {
  return failure(401, 'Unauthorized', message);
}

/** `message` is the authorizer's reason, e.g. `User "x" cannot list resource "pods" ...`. */
export function forbidden(gr: GroupResource, name: string, reason: string): KubeStatus {
  const what = name === '' ? qualifiedResource(gr) : `${qualifiedResource(gr)} "${name}"`;
  return failure(403, 'Forbidden', `${what} is forbidden: ${reason}`, objectDetails(gr, name));
}

export function notFound(gr: GroupResource, name: string): KubeStatus {
  return failure(
    404,
    'NotFound',
    `${qualifiedResource(gr)} "${name}" not found`,
    objectDetails(gr, name),
  );
}

export function alreadyExists(gr: GroupResource, name: string): KubeStatus {
  return failure(
    409,
    'AlreadyExists',
    `${qualifiedResource(gr)} "${name}" already exists`,
    objectDetails(gr, name),
  );
}

export const OPTIMISTIC_LOCK_MESSAGE =
  'the object has been modified; please apply your changes to the latest version and try again';

export function conflict(gr: GroupResource, name: string, why: string = OPTIMISTIC_LOCK_MESSAGE) {
  return failure(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(gr)} "${name}": ${why}`,
    objectDetails(gr, name),
  );
}

/** The 410 a watch or list gets for a resourceVersion older than the server's history. */
export function expired(message: string): KubeStatus {
  return failure(410, 'Expired', message);
}

export function gone(message: string): KubeStatus {
  return failure(410, 'Gone', message);
}

export function invalid(
  kind: string,
  group: string,
  name: string,
  causes: Array<{ field: string; message: string; reason?: string }>,
): KubeStatus {
  const summary = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  const details: StatusDetails = {
    name,
    kind,
    causes: causes.map((c) => ({
      reason: c.reason ?? 'FieldValueInvalid',
      message: c.message,
      field: c.field,
    })),
  };
  if (group !== '') details.group = group;
  const qualifiedKind = group === '' ? kind : `${kind}.${group}`;
  return failure(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${summary}`, details);
}

export function methodNotAllowed(verb: string, gr: GroupResource): KubeStatus {
  return failure(
    405,
    'MethodNotAllowed',
    `${verb} is not supported on resources of kind "${qualifiedResource(gr)}"`,
  );
}

export function unsupportedMediaType(contentType: string): KubeStatus {
  return failure(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got ${JSON.stringify(contentType)})`,
  );
}

/** kube-apiserver's limit for request bodies is 3 MiB. */
export const MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024;

export function requestEntityTooLarge(limitBytes: number = MAX_REQUEST_BODY_BYTES): KubeStatus {
  return failure(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${limitBytes}`);
}

export function tooManyRequests(message: string, retryAfterSeconds = 1): KubeStatus {
  return failure(429, 'TooManyRequests', message, { retryAfterSeconds });
}

export function internalError(cause: string): KubeStatus {
  return failure(500, 'InternalError', `Internal error occurred: ${cause}`, {
    causes: [{ message: cause }],
  });
}

/** apimachinery has no reason for 502; it answers with an unknown reason and the code. */
export function badGateway(message: string): KubeStatus {
  return failure(502, '', message);
}

export function serviceUnavailable(message: string, retryAfterSeconds?: number): KubeStatus {
  return failure(
    503,
    'ServiceUnavailable',
    message,
    retryAfterSeconds === undefined ? undefined : { retryAfterSeconds },
  );
}

export function gatewayTimeout(message: string, retryAfterSeconds = 1): KubeStatus {
  return failure(504, 'Timeout', message, { retryAfterSeconds });
}

/**
 * A read at a resourceVersion the watch cache did not reach within its 3 s
 * wait (k8s.io/apiserver storage.NewTooLargeResourceVersionError).
 */
export function tooLargeResourceVersion(requested: bigint | number, current: bigint | number) {
  const status = gatewayTimeout(`Too large resource version: ${requested}, current: ${current}`, 1);
  status.details = {
    ...status.details,
    causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
  };
  return status;
}

/** Writes a Status as the apiserver does: JSON body, HTTP code = `status.code`. */
export function writeStatus(
  res: ServerResponse,
  status: KubeStatus,
  extraHeaders: Record<string, string> = {},
): void {
  const body = JSON.stringify(status);
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-cache, private',
    ...extraHeaders,
  };
  const retry = status.details?.retryAfterSeconds;
  if (retry !== undefined && (status.code === 429 || status.code >= 500)) {
    headers['Retry-After'] = String(retry);
  }
  res.writeHead(status.code, headers);
  res.end(body);
}

/** True when a parsed JSON body is a Kubernetes Status object. */
export function isStatus(value: unknown): value is KubeStatus {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { kind?: unknown }).kind === 'Status' &&
    typeof (value as { code?: unknown }).code === 'number'
  );
}
