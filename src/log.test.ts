import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from './log.ts';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { lines, destination };
}

describe('logger redaction', () => {
  it('never writes bearer tokens, client keys or Secret data', () => {
    const { lines, destination } = capture();
    const log = createLogger({ name: 'test', destination });
    log.info(
      {
        req: {
          method: 'GET',
          headers: { authorization: 'Bearer s3cr3t-token', 'user-agent': 'kubelet' },
        },
        upstream: { token: 'tok-123', clientKey: '-----BEGIN KEY-----' },
        object: { kind: 'Secret', metadata: { name: 'db' }, data: { password: 'aHVudGVyMg==' } },
      },
      'proxied',
    );
    const text = lines.join('\n');
    expect(text).not.toContain('s3cr3t-token');
    expect(text).not.toContain('tok-123');
    expect(text).not.toContain('BEGIN KEY');
    expect(text).not.toContain('aHVudGVyMg==');
    const rec = JSON.parse(lines[0] ?? '{}') as Record<string, never>;
    expect(rec).toMatchObject({
      msg: 'proxied',
      req: { headers: { authorization: '[Redacted]', 'user-agent': 'kubelet' } },
      object: { kind: 'Secret', metadata: { name: 'db' }, data: '[Redacted]' },
    });
  });

  it('keeps non-secret objects whole', () => {
    const { lines, destination } = capture();
    createLogger({ name: 'test', destination }).info(
      { object: { kind: 'ConfigMap', data: { a: '1' } } },
      'cached',
    );
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({
      object: { kind: 'ConfigMap', data: { a: '1' } },
    });
  });
});
