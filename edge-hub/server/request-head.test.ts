import { describe, expect, it } from 'vitest';
import { parseSimpleRequestHead, requestHeadEnd } from './request-head.ts';

function parse(text: string) {
  const buf = Buffer.from(text, 'latin1');
  const end = requestHeadEnd(buf);
  return end === -1 ? 'incomplete' : parseSimpleRequestHead(buf, end);
}

describe('parseSimpleRequestHead', () => {
  it('reads a plain GET: target, headers (Host aside), identity, credentials', () => {
    const text =
      'GET /api/v1/pods?limit=500 HTTP/1.1\r\nHost: 127.0.0.1:10271\r\n' +
      'User-Agent: kubelet/v1.32.0 (linux/amd64)\r\nAccept: application/json\r\n' +
      'Authorization: Bearer abc\r\n\r\n';
    const head = parse(`${text}GET /next`);
    expect(head).toMatchObject({
      target: '/api/v1/pods?limit=500',
      userAgent: 'kubelet/v1.32.0 (linux/amd64)',
      accept: 'application/json',
      authorization: 'Bearer abc',
      close: false,
      length: text.length,
    });
    if (head === 'incomplete' || head === undefined) throw new Error('not parsed');
    expect(head.headers.map(([n]) => n)).toEqual(['User-Agent', 'Accept', 'Authorization']);
  });

  it('waits for the empty line', () => {
    expect(parse('GET / HTTP/1.1\r\nHost: x\r\n')).toBe('incomplete');
  });

  it('notes Connection: close and joins repeated Accept lines', () => {
    const head = parse(
      'GET /api HTTP/1.1\r\nHost: x\r\nConnection: Close\r\nAccept: a\r\nAccept: b\r\n\r\n',
    );
    expect(head).toMatchObject({ close: true, accept: 'a, b' });
  });

  // Each of these is left to Node's server, which answers (or refuses) it exactly.
  it.each([
    ['another method', 'POST /api HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['HEAD', 'HEAD /api HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['HTTP/1.0', 'GET /api HTTP/1.0\r\nHost: x\r\n\r\n'],
    ['an absolute-form target', 'GET http://x/api HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a space in the target', 'GET /a b HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['a non-ASCII target', 'GET /\xe9 HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['no Host', 'GET /api HTTP/1.1\r\nAccept: x\r\n\r\n'],
    ['two Hosts', 'GET /api HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n'],
    ['a body length', 'GET /api HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n'],
    ['chunked', 'GET /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['Expect', 'GET /api HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n'],
    [
      'an upgrade',
      'GET /api HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n',
    ],
    ['a folded line', 'GET /api HTTP/1.1\r\nHost: x\r\nAccept: a\r\n b\r\n\r\n'],
    ['a bare LF inside a line', 'GET /api HTTP/1.1\r\nHost: x\r\nAccept: a\nX: b\r\n\r\n'],
    ['a bare CR inside a value', 'GET /api HTTP/1.1\r\nHost: x\r\nAccept: a\rb\r\n\r\n'],
    ['a space before the colon', 'GET /api HTTP/1.1\r\nHost: x\r\nAccept : a\r\n\r\n'],
    ['a line without a colon', 'GET /api HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n'],
    ['a NUL in a value', 'GET /api HTTP/1.1\r\nHost: x\r\nAccept: a\0\r\n\r\n'],
    ['two User-Agents', 'GET /api HTTP/1.1\r\nHost: x\r\nUser-Agent: a\r\nUser-Agent: b\r\n\r\n'],
    [
      'two Authorizations',
      'GET /api HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n',
    ],
    ['a head over 16 KiB', `GET /api HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(17000)}\r\n\r\n`],
  ])('leaves %s to Node', (_what, text) => {
    expect(parse(text)).toBeUndefined();
  });

  it('takes Content-Length: 0 (a bodiless GET some clients label)', () => {
    expect(parse('GET /api HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')).toMatchObject({
      target: '/api',
    });
  });
});
