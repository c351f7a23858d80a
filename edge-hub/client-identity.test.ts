import { describe, expect, it } from 'vitest';
import { componentFromUserAgent, isCacheAgent, UNKNOWN_COMPONENT } from './client-identity.ts';

describe('client identity', () => {
  it('takes the component from the first User-Agent token, lower-cased', () => {
    expect(componentFromUserAgent('kubelet/v1.25.0 (linux/amd64) kubernetes/a866cbe')).toBe(
      'kubelet',
    );
    expect(componentFromUserAgent('kube-proxy/v1.28.2 (linux/arm64) kubernetes/89a4ea3')).toBe(
      'kube-proxy',
    );
    expect(componentFromUserAgent('CoreDNS/1.10.1 (linux/amd64) kubernetes/e4c4d9b')).toBe(
      'coredns',
    );
    expect(componentFromUserAgent('flanneld/v0.22.0')).toBe('flanneld');
    expect(componentFromUserAgent('kubectl')).toBe('kubectl');
  });

  it('calls an empty, missing or odd User-Agent unknown', () => {
    expect(componentFromUserAgent(undefined)).toBe(UNKNOWN_COMPONENT);
    expect(componentFromUserAgent('')).toBe(UNKNOWN_COMPONENT);
    expect(componentFromUserAgent('   ')).toBe(UNKNOWN_COMPONENT);
    expect(componentFromUserAgent('/v1.0')).toBe(UNKNOWN_COMPONENT);
    expect(componentFromUserAgent('{"evil":1}/x')).toBe(UNKNOWN_COMPONENT);
    expect(componentFromUserAgent('a'.repeat(200))).toBe(UNKNOWN_COMPONENT);
  });

  it('caches only listed agents, or everyone with *', () => {
    expect(isCacheAgent(['kubelet', 'coredns'], 'kubelet')).toBe(true);
    expect(isCacheAgent(['kubelet', 'coredns'], 'kubectl')).toBe(false);
    expect(isCacheAgent(['*'], 'unknown')).toBe(true);
  });
});
