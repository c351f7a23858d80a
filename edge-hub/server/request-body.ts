import type { IncomingMessage } from 'node:http';

export type BodyReadResult =
  | { kind: 'ok'; body: Buffer | undefined }
  | { kind: 'too-large' }
  | { kind: 'aborted'; error: string };

/**
 * Reads a request body of at most `limit` bytes. A declared Content-Length
 * over the limit is refused before a byte is read; a chunked body stops
 * being read at the first chunk past the limit. The body is read whole
 * because a write may have to be sent to a second server (fail-over) or
 * answered locally, and kube-apiserver's own limit (3 MiB) keeps it small.
 */
export function readRequestBody(req: IncomingMessage, limit: number): Promise<BodyReadResult> {
  const declared = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (!chunked && (declared === undefined || declared === '0')) {
    return Promise.resolve({ kind: 'ok', body: undefined });
  }
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.resolve({ kind: 'too-large' });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (r: BodyReadResult) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      resolve(r);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        done({ kind: 'too-large' });
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => done({ kind: 'ok', body: size === 0 ? undefined : Buffer.concat(chunks) });
    const onError = (err: Error) => done({ kind: 'aborted', error: err.message });
    const onClose = () => {
      if (!req.complete) done({ kind: 'aborted', error: 'client closed the connection mid-body' });
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
