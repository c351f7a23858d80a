import type { IncomingMessage } from 'node:http';
import { nodeHttp } from '../node-http.ts';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import type { KubeStatus } from '../../src/kube/status.ts';
import type { Upstream } from '../upstream/upstream.ts';
import { LOCAL_SOURCE, SOURCE_HEADER } from '../response-source.ts';
import {
  credentialsOf,
  prepareRequestHeaders,
  putHubAuthorization,
  responseHeaders,
  upstreamPath,
} from './forwarding-policy.ts';

const { request: httpRequest, STATUS_CODES } = nodeHttp;

/** The answer's head as raw bytes (there is no ServerResponse for an upgrade). */
function rawHead(res: IncomingMessage): string {
  const code = res.statusCode ?? 502;
  let head = `HTTP/1.1 ${code} ${res.statusMessage ?? STATUS_CODES[code] ?? ''}\r\n`;
  for (const [name, value] of Object.entries(responseHeaders(res, 'upgrade'))) {
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${String(v)}\r\n`;
  }
  // A refused upgrade's body is relayed to the end of the connection.
  if (code !== 101) head += 'Connection: close\r\n';
  return `${head}\r\n`;
}

/** A Status on a socket that has not been answered yet (no ServerResponse for upgrades). */
export function writeRawStatus(socket: Duplex, status: KubeStatus): void {
  const body = JSON.stringify(status);
  socket.end(
    `HTTP/1.1 ${status.code} ${STATUS_CODES[status.code] ?? ''}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `${SOURCE_HEADER}: ${LOCAL_SOURCE}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Relays an HTTP upgrade (kubectl exec/attach/port-forward over SPDY or
 * WebSocket) to one server and then pipes bytes both ways. http-proxy's
 * `ws()` only knows WebSocket GETs; SPDY exec is a POST. Resolves once the
 * upstream answered (upgraded or not); rejects when it could not be reached.
 */
export async function forwardUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  upstream: Upstream,
): Promise<void> {
  const headers = { ...req.headers, host: upstream.url.host };
  prepareRequestHeaders(headers, 'upgrade', false);
  const credentials = credentialsOf(headers, upstream);
  if (!credentials.own) putHubAuthorization(headers, await upstream.authorization());
  const request = upstream.url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<void>((resolve, reject) => {
    const out = request(new URL(upstreamPath(upstream, req.url ?? '/'), upstream.url), {
      method: req.method ?? 'GET',
      headers,
      agent: credentials.agent,
    });
    out.on('error', reject);
    socket.on('error', () => out.destroy());
    out.on('upgrade', (res, upSocket, upHead) => {
      resolve();
      socket.write(rawHead(res));
      if (upHead.length > 0) socket.write(upHead);
      if (head.length > 0) upSocket.write(head);
      upSocket.on('error', () => socket.destroy());
      socket.on('close', () => upSocket.destroy());
      upSocket.on('close', () => socket.destroy());
      upSocket.pipe(socket).pipe(upSocket);
    });
    out.on('response', (res) => {
      // Refused (401, 403, 400 "Upgrade request required"): relay the answer and close.
      resolve();
      socket.write(rawHead(res));
      res.pipe(socket);
      res.on('error', () => socket.destroy());
    });
    out.end();
  });
}
