import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import {
  badRequest,
  MAX_REQUEST_BODY_BYTES,
  requestEntityTooLarge,
  unsupportedMediaType,
  type KubeStatus,
} from '../../src/kube/status.ts';
import { StatusError } from './object-meta.ts';
import { decodeProtobufObject, ProtobufDecodeError } from './protobuf-body.ts';

/** Reading request bodies and writing JSON the way kube-apiserver does on the wire. */

export const JSON_HEADERS = {
  'Content-Type': 'application/json',
  'Cache-Control': 'no-cache, private',
} as const;

/** Reads the whole body; over `limit` bytes is 413 as the apiserver's MaxBytesReader answers. */
export function readBody(req: IncomingMessage, limit = MAX_REQUEST_BODY_BYTES): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > limit) {
    req.resume();
    return Promise.reject(new StatusError(requestEntityTooLarge(limit)));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        reject(new StatusError(requestEntityTooLarge(limit)));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (!failed) reject(err);
    });
  });
}

/** The media type without parameters, lower case. */
export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/** Decodes a JSON, YAML or (some kinds') protobuf body; a malformed one is 400, an unknown media type 415. */
export function decodeBody(body: Buffer, contentType: string | undefined): unknown {
  const type = mediaType(contentType);
  const text = body.toString('utf8');
  if (type === '' || type === 'application/json' || type === '*/*') {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new StatusError(
        badRequest(`couldn't get version/kind; json parse error: ${(err as Error).message}`),
      );
    }
  }
  if (type === 'application/yaml') {
    try {
      return parseYaml(text) as unknown;
    } catch (err) {
      throw new StatusError(badRequest(`error converting YAML to JSON: ${(err as Error).message}`));
    }
  }
  if (type === 'application/vnd.kubernetes.protobuf') {
    try {
      return decodeProtobufObject(body);
    } catch (err) {
      if (!(err instanceof ProtobufDecodeError)) throw err;
      if (err.message.includes('cannot decode')) {
        throw new StatusError({ ...unsupportedMediaType(contentType ?? ''), message: err.message });
      }
      throw new StatusError(badRequest(`unable to decode protobuf body: ${err.message}`));
    }
  }
  throw new StatusError(unsupportedMediaType(contentType ?? ''));
}

/** Decodes a patch body (always JSON, whatever the patch media type). */
export function decodeJsonBody(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (err) {
    throw new StatusError(badRequest(`error decoding patch: ${(err as Error).message}`));
  }
}

export function writeJsonText(
  res: ServerResponse,
  code: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(code, { ...JSON_HEADERS, 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function writeJson(res: ServerResponse, code: number, value: unknown): void {
  writeJsonText(res, code, JSON.stringify(value));
}

/** Writes a Status whose `metadata` may carry a continue token (410 on an expired continue). */
export function writeStatusObject(res: ServerResponse, status: KubeStatus): void {
  const headers: Record<string, string> = {};
  const retry = status.details?.retryAfterSeconds;
  if (retry !== undefined && (status.code === 429 || status.code >= 500)) {
    headers['Retry-After'] = String(retry);
  }
  writeJsonText(res, status.code, JSON.stringify(status), headers);
}

export function writePlain(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, {
    'Content-Type': 'text/plain; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-cache, private',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

export interface Negotiated {
  /** The client asked for server-side printing (`as=Table`). */
  table: boolean;
  /** The client accepts JSON at all; when false the request is 406. */
  acceptable: boolean;
}

/**
 * kubectl asks `application/json;as=Table;v=v1;g=meta.k8s.io,application/json`;
 * kubelet asks `application/vnd.kubernetes.protobuf,application/json`. The
 * double always answers JSON, or a Table when one is asked for.
 */
export function negotiate(accept: string | undefined): Negotiated {
  if (accept === undefined || accept.trim() === '') return { table: false, acceptable: true };
  let table = false;
  let acceptable = false;
  for (const entry of accept.split(',')) {
    const [typePart, ...params] = entry.split(';').map((p) => p.trim());
    const type = (typePart ?? '').toLowerCase();
    const as = params.find((p) => p.startsWith('as='))?.slice(3);
    if (type === 'application/json' || type === '*/*' || type === 'application/*') {
      if (as === 'Table') table = true;
      else if (as === undefined) acceptable = true;
    }
  }
  return { table, acceptable: acceptable || table };
}
