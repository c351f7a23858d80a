import { describe, expect, it } from 'vitest';
import {
  jsonMergePatch,
  patchMetaFor,
  strategicMergePatch,
  StrategicMergePatchError,
} from './strategic-merge-patch.ts';

const POD = patchMetaFor('', 'Pod');
const NODE = patchMetaFor('', 'Node');

const pod = () => ({
  metadata: {
    name: 'p',
    labels: { a: '1', b: '2' },
    finalizers: ['f1', 'f2'],
    ownerReferences: [
      { apiVersion: 'v1', kind: 'X', name: 'x', uid: 'u1' },
      { apiVersion: 'v1', kind: 'Y', name: 'y', uid: 'u2' },
    ],
  },
  spec: {
    containers: [
      {
        name: 'app',
        image: 'app:1',
        env: [
          { name: 'A', value: '1' },
          { name: 'B', value: '2' },
        ],
        ports: [{ containerPort: 80, protocol: 'TCP' }],
      },
      { name: 'side', image: 'side:1' },
    ],
    tolerations: [{ key: 't1', operator: 'Exists' }],
    volumes: [{ name: 'v1', emptyDir: {} }],
  },
  status: {
    conditions: [
      { type: 'Ready', status: 'False' },
      { type: 'PodScheduled', status: 'True' },
    ],
    containerStatuses: [
      { name: 'app', ready: false },
      { name: 'side', ready: false },
    ],
  },
});

describe('strategic merge patch', () => {
  it('merges maps and deletes keys set to null', () => {
    const out = strategicMergePatch(pod(), { metadata: { labels: { a: null, c: '3' } } }, POD);
    expect((out.metadata as { labels: unknown }).labels).toEqual({ b: '2', c: '3' });
  });

  it('merges conditions by type, keeping the order and appending new ones', () => {
    const out = strategicMergePatch(
      pod(),
      {
        status: {
          conditions: [
            { type: 'Ready', status: 'True' },
            { type: 'Initialized', status: 'True' },
          ],
        },
      },
      POD,
    );
    expect((out.status as { conditions: unknown }).conditions).toEqual([
      { type: 'Ready', status: 'True' },
      { type: 'PodScheduled', status: 'True' },
      { type: 'Initialized', status: 'True' },
    ]);
  });

  it('merges containers by name, and env by name and ports by containerPort inside them', () => {
    const out = strategicMergePatch(
      pod(),
      {
        spec: {
          containers: [
            {
              name: 'app',
              image: 'app:2',
              env: [
                { name: 'B', value: '20' },
                { name: 'C', value: '3' },
              ],
              ports: [{ containerPort: 443 }],
            },
          ],
        },
      },
      POD,
    );
    const containers = (out.spec as { containers: Array<Record<string, unknown>> }).containers;
    expect(containers.map((c) => c.name)).toEqual(['app', 'side']);
    expect(containers[0]).toMatchObject({
      image: 'app:2',
      env: [
        { name: 'A', value: '1' },
        { name: 'B', value: '20' },
        { name: 'C', value: '3' },
      ],
      ports: [{ containerPort: 80, protocol: 'TCP' }, { containerPort: 443 }],
    });
  });

  it('replaces atomic lists: tolerations, containerStatuses, node taints', () => {
    const out = strategicMergePatch(
      pod(),
      {
        spec: { tolerations: [{ key: 't2', operator: 'Exists' }] },
        status: { containerStatuses: [{ name: 'app', ready: true }] },
      },
      POD,
    );
    expect((out.spec as { tolerations: unknown }).tolerations).toEqual([
      { key: 't2', operator: 'Exists' },
    ]);
    expect((out.status as { containerStatuses: unknown }).containerStatuses).toEqual([
      { name: 'app', ready: true },
    ]);
    const node = {
      spec: {
        taints: [
          { key: 'a', effect: 'NoSchedule' },
          { key: 'b', effect: 'NoExecute' },
        ],
      },
    };
    const patched = strategicMergePatch(
      node,
      { spec: { taints: [{ key: 'c', effect: 'NoSchedule' }] } },
      NODE,
    );
    expect((patched.spec as { taints: unknown }).taints).toEqual([
      { key: 'c', effect: 'NoSchedule' },
    ]);
  });

  it('merges node conditions and addresses by type', () => {
    const node = {
      status: {
        conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: 't0' }],
        addresses: [{ type: 'InternalIP', address: '10.0.0.1' }],
      },
    };
    const out = strategicMergePatch(
      node,
      {
        status: {
          conditions: [{ type: 'Ready', lastHeartbeatTime: 't1' }],
          addresses: [{ type: 'Hostname', address: 'n1' }],
        },
      },
      NODE,
    );
    expect(out.status).toEqual({
      conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: 't1' }],
      addresses: [
        { type: 'InternalIP', address: '10.0.0.1' },
        { type: 'Hostname', address: 'n1' },
      ],
    });
  });

  it('merges finalizers as a set and removes with $deleteFromPrimitiveList', () => {
    const added = strategicMergePatch(pod(), { metadata: { finalizers: ['f2', 'f3'] } }, POD);
    expect((added.metadata as { finalizers: unknown }).finalizers).toEqual(['f1', 'f2', 'f3']);
    const removed = strategicMergePatch(
      pod(),
      { metadata: { '$deleteFromPrimitiveList/finalizers': ['f1'] } },
      POD,
    );
    expect((removed.metadata as { finalizers: unknown }).finalizers).toEqual(['f2']);
  });

  it('merges ownerReferences by uid and deletes one with $patch: delete', () => {
    const out = strategicMergePatch(
      pod(),
      {
        metadata: {
          ownerReferences: [
            { uid: 'u1', $patch: 'delete' },
            { apiVersion: 'v1', kind: 'Z', name: 'z', uid: 'u3' },
          ],
        },
      },
      POD,
    );
    expect(
      (out.metadata as { ownerReferences: Array<{ uid: string }> }).ownerReferences.map(
        (o) => o.uid,
      ),
    ).toEqual(['u2', 'u3']);
  });

  it('honours $patch: replace on a list and on a map', () => {
    const list = strategicMergePatch(
      pod(),
      { status: { conditions: [{ $patch: 'replace' }, { type: 'Only', status: 'True' }] } },
      POD,
    );
    expect((list.status as { conditions: unknown }).conditions).toEqual([
      { type: 'Only', status: 'True' },
    ]);
    const map = strategicMergePatch(
      pod(),
      { metadata: { labels: { $patch: 'replace', z: '26' } } },
      POD,
    );
    expect((map.metadata as { labels: unknown }).labels).toEqual({ z: '26' });
    const gone = strategicMergePatch(pod(), { metadata: { labels: { $patch: 'delete' } } }, POD);
    expect((gone.metadata as { labels?: unknown }).labels).toBeUndefined();
  });

  it('orders a list as $setElementOrder says and keeps the directive out of the result', () => {
    const out = strategicMergePatch(
      pod(),
      {
        status: {
          '$setElementOrder/conditions': [{ type: 'PodScheduled' }, { type: 'Ready' }],
          conditions: [{ type: 'Ready', status: 'True' }],
        },
      },
      POD,
    );
    expect(Object.keys(out.status as object).some((k) => k.startsWith('$setElementOrder/'))).toBe(
      false,
    );
    expect((out.status as { conditions: unknown }).conditions).toEqual([
      { type: 'PodScheduled', status: 'True' },
      { type: 'Ready', status: 'True' },
    ]);
  });

  it('applies $retainKeys on volumes (merge,retainKeys)', () => {
    const out = strategicMergePatch(
      pod(),
      {
        spec: {
          volumes: [{ name: 'v1', $retainKeys: ['name', 'configMap'], configMap: { name: 'cm' } }],
        },
      },
      POD,
    );
    expect((out.spec as { volumes: unknown }).volumes).toEqual([
      { name: 'v1', configMap: { name: 'cm' } },
    ]);
  });

  it('refuses a merge-keyed element without its key', () => {
    expect(() =>
      strategicMergePatch(pod(), { spec: { containers: [{ image: 'x' }] } }, POD),
    ).toThrow(StrategicMergePatchError);
  });

  it('treats lists of kinds without patch meta as atomic', () => {
    const meta = patchMetaFor('discovery.k8s.io', 'EndpointSlice');
    const out = strategicMergePatch(
      { endpoints: [{ addresses: ['1.1.1.1'] }, { addresses: ['2.2.2.2'] }] },
      { endpoints: [{ addresses: ['3.3.3.3'] }] },
      meta,
    );
    expect(out.endpoints).toEqual([{ addresses: ['3.3.3.3'] }]);
  });
});

describe('JSON merge patch (RFC 7386)', () => {
  it('merges objects, deletes nulls and replaces lists', () => {
    expect(
      jsonMergePatch({ a: { b: 1, c: 2 }, l: [1, 2] }, { a: { b: null, d: 4 }, l: [3] }),
    ).toEqual({
      a: { c: 2, d: 4 },
      l: [3],
    });
  });
});
