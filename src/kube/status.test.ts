import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  badGateway,
  badRequest,
  conflict,
  expired,
  forbidden,
  gatewayTimeout,
  internalError,
  isStatus,
  notFound,
  requestEntityTooLarge,
  serviceUnavailable,
  tooManyRequests,
  writeStatus,
  type KubeStatus,
} from './status.ts';

describe('Kubernetes Status objects', () => {
  const cases: Array<[string, KubeStatus, number, string | undefined, string]> = [
    ['bad request', badRequest('bad selector'), 400, 'BadRequest', 'bad selector'],
    [
      'forbidden',
      forbidden({ group: '', resource: 'secrets' }, 's1', 'no access'),
      403,
      'Forbidden',
      'secrets "s1" is forbidden: no access',
    ],
    [
      'not found, core group',
      notFound({ group: '', resource: 'pods' }, 'web-0'),
      404,
      'NotFound',
      'pods "web-0" not found',
    ],
    [
      'not found, named group',
      notFound({ group: 'coordination.k8s.io', resource: 'leases' }, 'n1'),
      404,
      'NotFound',
      'leases.coordination.k8s.io "n1" not found',
    ],
    [
      'conflict',
      conflict({ group: '', resource: 'nodes' }, 'n1'),
      409,
      'Conflict',
      'Operation cannot be fulfilled on nodes "n1": the object has been modified; please apply your changes to the latest version and try again',
    ],
    [
      'expired',
      expired('too old resource version: 1 (5)'),
      410,
      'Expired',
      'too old resource version: 1 (5)',
    ],
    [
      'too large',
      requestEntityTooLarge(),
      413,
      'RequestEntityTooLarge',
      'Request entity too large: limit is 3145728',
    ],
    ['too many', tooManyRequests('slow down', 2), 429, 'TooManyRequests', 'slow down'],
    ['internal', internalError('boom'), 500, 'InternalError', 'Internal error occurred: boom'],
    ['bad gateway', badGateway('upstream sent garbage'), 502, undefined, 'upstream sent garbage'],
    [
      'unavailable',
      serviceUnavailable('node is offline'),
      503,
      'ServiceUnavailable',
      'node is offline',
    ],
    ['timeout', gatewayTimeout('took too long'), 504, 'Timeout', 'took too long'],
  ];

  it.each(cases)('%s has the apiserver shape', (_name, status, code, reason, message) => {
    expect(status.kind).toBe('Status');
    expect(status.apiVersion).toBe('v1');
    expect(status.metadata).toEqual({});
    expect(status.status).toBe('Failure');
    expect(status.code).toBe(code);
    expect(status.reason).toBe(reason);
    expect(status.message).toBe(message);
    expect(isStatus(JSON.parse(JSON.stringify(status)))).toBe(true);
  });

  it('names the group in details only when there is one', () => {
    expect(notFound({ group: '', resource: 'pods' }, 'p').details).toEqual({
      name: 'p',
      kind: 'pods',
    });
    expect(notFound({ group: 'apps', resource: 'deployments' }, 'd').details).toEqual({
      name: 'd',
      group: 'apps',
      kind: 'deployments',
    });
  });

  it('is written with its code, JSON content type and Retry-After for 429/5xx', async () => {
    const server = createServer((_req, res) => writeStatus(res, tooManyRequests('later', 3)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const got = await new Promise<{ code: number; headers: Record<string, unknown>; body: string }>(
      (resolve, reject) => {
        request({ port, host: '127.0.0.1', path: '/' }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ code: res.statusCode ?? 0, headers: res.headers, body }));
        })
          .on('error', reject)
          .end();
      },
    );
    server.close();
    expect(got.code).toBe(429);
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['retry-after']).toBe('3');
    expect(JSON.parse(got.body)).toMatchObject({
      kind: 'Status',
      code: 429,
      reason: 'TooManyRequests',
    });
  });
});
