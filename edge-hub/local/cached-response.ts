import type { ServerResponse } from 'node:http';
import { writeStatus, type KubeStatus } from '../../src/kube/status.ts';

/** Every offline answer says where it came from. */
export const SOURCE_HEADERS = { 'X-Edgebox-Source': 'cache' } as const;

/** RFC 7234 warning text as the apiserver sends it: `299 - "message"`. */
export function warningHeader(message: string): string {
  return `299 - ${JSON.stringify(message)}`;
}

export function baseHeaders(warnings: readonly string[] = []): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-cache, private',
    ...SOURCE_HEADERS,
  };
  if (warnings.length > 0) headers.Warning = warnings.map(warningHeader);
  return headers;
}

export function writeCachedStatus(res: ServerResponse, status: KubeStatus): void {
  writeStatus(res, status, { ...SOURCE_HEADERS });
}

/** A whole JSON document (object GET, write acknowledgement); apiserver bodies end with a newline. */
export function writeCachedJson(res: ServerResponse, code: number, body: Buffer | string): void {
  const payload = Buffer.concat([typeof body === 'string' ? Buffer.from(body) : body, NEWLINE]);
  res.writeHead(code, { ...baseHeaders(), 'Content-Length': String(payload.length) });
  res.end(payload);
}

const NEWLINE = Buffer.from('\n');

/**
 * Resolves once a slow client has read what is buffered for it, or has gone
 * away: waiting for 'drain' alone would wait forever for a client that closed,
 * holding the answer's LevelDB iterator (and its snapshot) open.
 */
export function drained(res: ServerResponse): Promise<void> {
  if (!res.writableNeedDrain || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
