import { describe, expect, it } from 'vitest';
import { FramingError, parseResponseHead } from './response-framing.ts';

/** Feeds `wire` in pieces of `step` bytes; returns the payload, bytes used and whether it ended. */
function read(wire: string, step: number) {
  const buf = Buffer.from(wire, 'latin1');
  const parsed = parseResponseHead(buf);
  if (parsed === undefined) throw new Error('head incomplete');
  const { head, body } = parsed;
  const payload: Buffer[] = [];
  let used = head.length;
  for (let at = head.length; at < buf.length && !body.done; at += step) {
    const piece = buf.subarray(at, Math.min(at + step, buf.length));
    used += body.consume(piece, (b) => payload.push(Buffer.from(b)));
  }
  return { head, done: body.done, used, payload: Buffer.concat(payload).toString('latin1') };
}

const CHUNKED =
  'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' +
  '5\r\n{"a":\r\n' +
  '3;ext=1\r\n1}\n\r\n' +
  '0\r\nX-Trailer: t\r\n\r\n';

describe('response framing', () => {
  it('follows a Content-Length body and stops at its end', () => {
    const wire = 'HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{"a":1}HTTP/1.1 200';
    for (const step of [1, 3, 100]) {
      const r = read(wire, step);
      expect(r).toMatchObject({ done: true, payload: '{"a":1}' });
      expect(r.used).toBe(wire.indexOf('HTTP/1.1 200', 5));
    }
  });

  it('de-chunks a chunked body split anywhere (extensions and trailers included)', () => {
    for (const step of [1, 2, 5, 7, 1000]) {
      const r = read(`${CHUNKED}extra`, step);
      expect(r).toMatchObject({ done: true, payload: '{"a":1}\n' });
      expect(r.used).toBe(CHUNKED.length);
      expect(r.head.reusable).toBe(true);
    }
  });

  it('gives the recorder lower-cased headers and the client an HTTP/1.1 status line', () => {
    const { head } = read(
      'HTTP/1.0 404 Not Found\r\nContent-Type: a\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n',
      1,
    );
    expect(head.statusCode).toBe(404);
    expect(head.statusLine).toBe('HTTP/1.1 404 Not Found');
    expect(head.headers()).toMatchObject({ 'content-type': 'a', 'x-a': '1, 2' });
    // HTTP/1.0 without keep-alive: the connection is not reused.
    expect(head.reusable).toBe(false);
  });

  it('knows bodiless answers and bodies that run until close', () => {
    expect(read('HTTP/1.1 204 No Content\r\n\r\n', 1)).toMatchObject({ done: true, payload: '' });
    const open = read('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc', 1);
    expect(open).toMatchObject({ done: false, payload: 'abc' });
    expect(open.head).toMatchObject({ untilClose: true, reusable: false });
  });

  it('waits for the whole head', () => {
    expect(parseResponseHead(Buffer.from('HTTP/1.1 200 OK\r\nContent-Le'))).toBeUndefined();
  });

  it.each([
    ['a malformed status line', 'HTTP/2 200\r\n\r\n'],
    ['an informational answer', 'HTTP/1.1 100 Continue\r\n\r\n'],
    ['two different lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'],
    ['a negative length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'],
    [
      'length and chunked',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
    ],
    ['a malformed header line', 'HTTP/1.1 200 OK\r\nbad line\r\n\r\n'],
  ])('refuses %s', (_what, wire) => {
    expect(() => parseResponseHead(Buffer.from(wire))).toThrow(FramingError);
  });

  it.each([
    ['a chunk size that is not hex', 'zz\r\n'],
    ['a chunk longer than its size', '2\r\nabc\r\n0\r\n\r\n'],
    ['a chunk line ended by a bare LF', '2\nab\r\n'],
    ['an endless chunk-size line', `${'1'.repeat(5000)}`],
  ])('refuses %s in a chunked body', (_what, body) => {
    const parsed = parseResponseHead(
      Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
    );
    expect(() => parsed?.body.consume(Buffer.from(body), () => {})).toThrow(FramingError);
  });

  it('refuses a head that never ends', () => {
    expect(() =>
      parseResponseHead(Buffer.from(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(70_000)}`)),
    ).toThrow(/longer than/);
  });
});
