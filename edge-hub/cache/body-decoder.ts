import { createBrotliDecompress, createGunzip, createInflate, type Gunzip } from 'node:zlib';

/**
 * Undoes `Content-Encoding` on an upstream body as it streams (the apiserver
 * gzips large responses when the client accepts it), handing plain bytes on.
 */
export interface BodyDecoder {
  write(chunk: Buffer): void;
  /** Resolves when every decoded byte has been handed on; rejects on a corrupt stream. */
  end(): Promise<void>;
  abort(): void;
}

export function createBodyDecoder(
  contentEncoding: string | undefined,
  onData: (chunk: Buffer) => void,
): BodyDecoder | Error {
  const encoding = (contentEncoding ?? '').trim().toLowerCase();
  if (encoding === '' || encoding === 'identity') {
    return { write: onData, end: () => Promise.resolve(), abort: () => undefined };
  }
  let stream: Gunzip | ReturnType<typeof createInflate> | ReturnType<typeof createBrotliDecompress>;
  if (encoding === 'gzip' || encoding === 'x-gzip') stream = createGunzip();
  else if (encoding === 'deflate') stream = createInflate();
  else if (encoding === 'br') stream = createBrotliDecompress();
  else return new Error(`unsupported Content-Encoding ${JSON.stringify(contentEncoding)}`);
  let failure: Error | undefined;
  stream.on('data', (chunk: Buffer) => onData(chunk));
  stream.on('error', (err: Error) => {
    failure = err;
  });
  const finished = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
    stream.on('close', () => (failure === undefined ? resolve() : reject(failure)));
  });
  finished.catch(() => undefined);
  return {
    write(chunk) {
      // zlib works on its input later: it gets a copy of its own.
      if (failure === undefined) stream.write(Buffer.from(chunk));
    },
    end() {
      stream.end();
      return finished;
    },
    abort() {
      stream.destroy();
    },
  };
}
