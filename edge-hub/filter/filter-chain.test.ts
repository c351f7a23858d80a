import { describe, expect, it } from 'vitest';
import { parseRequestInfo, RequestInfoError } from '../../src/kube/request-info.ts';
import type { HubRequest } from '../hub-request.ts';
import { FilterChain, rewriteEvent, rewriteListBody, rewriteWatchLines } from './filter-chain.ts';
import { registeredFilters } from './filters.ts';

function request(component: string, path: string, method = 'GET'): HubRequest {
  const info = parseRequestInfo(method, path);
  if (info instanceof RequestInfoError) throw info;
  return { component, info, query: new URLSearchParams(path.split('?')[1] ?? '') };
}

const HUB = { host: '169.254.2.1', port: 10268 };
const json = (o: unknown) => Buffer.from(JSON.stringify(o));
const parsed = (b: Buffer | undefined) =>
  b === undefined ? undefined : (JSON.parse(b.toString()) as unknown);

const kubernetesSvc = {
  kind: 'Service',
  metadata: { name: 'kubernetes', namespace: 'default' },
  spec: { clusterIP: '10.96.0.1', ports: [{ name: 'https', port: 443 }] },
};
const cloudLb = {
  kind: 'Service',
  metadata: { name: 'lb', namespace: 'default', annotations: { 'edgebox.io/cloud-only': 'true' } },
  spec: { type: 'LoadBalancer', clusterIP: '10.96.0.9' },
};
const web = { kind: 'Service', metadata: { name: 'web', namespace: 'default' }, spec: {} };

describe('FilterChain', () => {
  const chain = new FilterChain(registeredFilters(HUB));

  it('applies each filter to the clients and resources it names only', () => {
    expect(chain.for(request('kubelet', '/api/v1/services'))).toBeDefined();
    expect(chain.for(request('kube-proxy', '/api/v1/services'))).toBeDefined();
    expect(
      chain.for(request('kube-proxy', '/apis/discovery.k8s.io/v1/endpointslices')),
    ).toBeDefined();
    expect(
      chain.for(request('kubelet', '/apis/discovery.k8s.io/v1/endpointslices')),
    ).toBeUndefined();
    expect(chain.for(request('coredns', '/api/v1/services'))).toBeUndefined();
    expect(chain.for(request('kubelet', '/api/v1/pods'))).toBeUndefined();
    // Subresources are not the object.
    expect(
      chain.for(request('kubelet', '/api/v1/namespaces/default/services/kubernetes/status')),
    ).toBeUndefined();
  });

  it('leaves a disabled filter out, and the API rewrites out without a hub address', () => {
    const disabled = new FilterChain(registeredFilters(HUB), ['masterservice']);
    expect(disabled.for(request('kubelet', '/api/v1/services'))).toBeUndefined();
    expect(new FilterChain(registeredFilters(undefined)).names()).toEqual(['discardcloudservice']);
  });

  it("rewrites the kubernetes Service for kubelet, keeps other objects' bytes as they were", () => {
    const rewrite = chain.for(request('kubelet', '/api/v1/services'));
    expect(parsed(rewrite?.(json(kubernetesSvc)))).toMatchObject({
      spec: {
        clusterIP: HUB.host,
        clusterIPs: [HUB.host],
        ports: [{ name: 'https', port: HUB.port }],
      },
    });
    const webBytes = Buffer.from(' {"kind":"Service","metadata":{"name":"web"}}');
    expect(rewrite?.(webBytes)).toBe(webBytes);
  });

  it('drops cloud-only LoadBalancers for kube-proxy in lists and turns them into DELETED in watches', () => {
    const rewrite = chain.for(request('kube-proxy', '/api/v1/services'));
    if (rewrite === undefined) throw new Error('no rewrite');
    const list = rewriteListBody(
      rewrite,
      json({ kind: 'ServiceList', metadata: { resourceVersion: '7' }, items: [cloudLb, web] }),
    );
    expect(parsed(list)).toEqual({
      kind: 'ServiceList',
      metadata: { resourceVersion: '7' },
      items: [web],
    });
    expect(rewriteEvent(rewrite, 'ADDED', json(cloudLb))).toBeUndefined();
    expect(rewriteEvent(rewrite, 'MODIFIED', json(cloudLb))?.type).toBe('DELETED');
    expect(rewriteEvent(rewrite, 'BOOKMARK', json(cloudLb))?.type).toBe('BOOKMARK');
    const lines = rewriteWatchLines(
      rewrite,
      Buffer.from(
        `${JSON.stringify({ type: 'ADDED', object: cloudLb })}\n` +
          `${JSON.stringify({ type: 'ADDED', object: web })}\n` +
          `${JSON.stringify({ type: 'MODIFIED', object: cloudLb })}\n`,
      ),
    );
    expect(
      lines
        .toString()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; object: { metadata: { name: string } } })
        .map((e) => [e.type, e.object.metadata.name]),
    ).toEqual([
      ['ADDED', 'web'],
      ['DELETED', 'lb'],
    ]);
  });
});
