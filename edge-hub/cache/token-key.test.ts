import { describe, expect, it } from 'vitest';
import { tokenStoreKey } from './token-key.ts';

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('tokenStoreKey', () => {
  it("keys a Go client's request, nil fields written as null, as one that leaves them out", () => {
    const goClient = json({
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec: { audiences: null, expirationSeconds: 3600, boundObjectRef: null },
      status: { token: '', expirationTimestamp: null },
    });
    const key = tokenStoreKey('csi-driver', 'default', 'sa', goClient);
    expect(key).not.toBeInstanceOf(Error);
    expect(key).toBe(tokenStoreKey('csi-driver', 'default', 'sa', json({ spec: {} })));
  });

  it('tells audiences and bound objects apart, not their order', () => {
    const key = (spec: unknown) => tokenStoreKey('kubelet', 'default', 'sa', json({ spec }));
    const pod = { kind: 'Pod', apiVersion: 'v1', name: 'p', uid: 'u1' };
    expect(key({ audiences: ['a', 'b'] })).toBe(key({ audiences: ['b', 'a'] }));
    expect(key({ audiences: ['a'] })).not.toBe(key({ audiences: ['b'] }));
    expect(key({ boundObjectRef: pod })).not.toBe(key({ boundObjectRef: { ...pod, uid: 'u2' } }));
    expect(tokenStoreKey('kube-proxy', 'default', 'sa', json({}))).not.toBe(key({}));
  });
});
