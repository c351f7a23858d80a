/**
 * The request heads the hub's fast lane forwards itself (server/fast-lane.ts):
 * a bodiless `GET` on HTTP/1.1 whose every line is unambiguous. Anything else
 * (a body, an upgrade, `Expect`, an odd line ending, a folded or malformed
 * header, a second Host) is not parsed further here: Node's HTTP server takes
 * the connection and answers it as before (400 and 431 included). So the fast
 * lane never has to be right about a request it could misread, and nothing it
 * forwards can be read differently by kube-apiserver (request smuggling).
 */
export interface SimpleRequestHead {
  /** The request target as sent: an origin-form path with its query. */
  target: string;
  /** Every header line but Host, as sent: [name, value] (value trimmed). */
  headers: Array<[string, string]>;
  userAgent: string | undefined;
  accept: string | undefined;
  authorization: string | undefined;
  /** The client said `Connection: close`: answer, then close. */
  close: boolean;
  /** Bytes of the head, its final empty line included. */
  length: number;
}

/** Node's default limit (--max-http-header-size): longer heads go to Node, which answers 431. */
export const MAX_SIMPLE_HEAD_BYTES = 16 * 1024;

const CRLF_CRLF = Buffer.from('\r\n\r\n');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Visible ASCII only: no space, no control character, no byte above 0x7e. */
const ORIGIN_FORM = /^\/[!-~]*$/;
/** A field value: no control characters but tab (bytes 0x80-0xff are obs-text, allowed). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** Request headers that belong to the client's connection, or that only Node's server handles. */
const HANDED_OFF = new Set(['transfer-encoding', 'upgrade', 'expect']);

/**
 * Where the head that starts `buf` ends (the index after its empty line), or
 * -1 while it is incomplete.
 */
export function requestHeadEnd(buf: Buffer): number {
  const at = buf.indexOf(CRLF_CRLF);
  return at === -1 ? -1 : at + 4;
}

/**
 * The head in `buf[0, end)` if it is a request the fast lane may forward;
 * undefined for any other (Node's server then reads it).
 */
export function parseSimpleRequestHead(buf: Buffer, end: number): SimpleRequestHead | undefined {
  if (end > MAX_SIMPLE_HEAD_BYTES) return undefined;
  // latin1 maps each byte to one character, so checks below see the bytes as sent.
  const lines = buf.toString('latin1', 0, end - 4).split('\r\n');
  const requestLine = lines[0] ?? '';
  if (!requestLine.startsWith('GET ') || !requestLine.endsWith(' HTTP/1.1')) return undefined;
  const target = requestLine.slice(4, -9);
  if (!ORIGIN_FORM.test(target)) return undefined;

  const headers: Array<[string, string]> = [];
  let hosts = 0;
  let userAgent: string | undefined;
  let accept: string | undefined;
  let authorization: string | undefined;
  let close = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return undefined; // also rejects folded lines (leading space)
    const value = line.slice(colon + 1).trim();
    if (!FIELD_VALUE.test(value)) return undefined; // a bare CR or LF, NUL, ...
    const key = name.toLowerCase();
    if (HANDED_OFF.has(key)) return undefined;
    switch (key) {
      case 'host':
        hosts += 1;
        continue;
      case 'content-length':
        if (value !== '0') return undefined;
        continue;
      case 'connection': {
        const options = value.toLowerCase();
        if (options.includes('upgrade')) return undefined;
        if (options.includes('close')) close = true;
        break;
      }
      case 'user-agent':
        if (userAgent !== undefined) return undefined;
        userAgent = value;
        break;
      case 'accept':
        accept = accept === undefined ? value : `${accept}, ${value}`;
        break;
      case 'authorization':
        if (authorization !== undefined) return undefined;
        authorization = value;
        break;
    }
    headers.push([name, value]);
  }
  // HTTP/1.1 requires exactly one Host (Node answers 400 otherwise).
  if (hosts !== 1) return undefined;
  return { target, headers, userAgent, accept, authorization, close, length: end };
}
