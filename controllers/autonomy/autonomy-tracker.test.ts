import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.ts';
import { MemoryWriter } from '../actuator/memory-writer.ts';
import { FakeClock } from '../clock.ts';
import { ClusterCache } from '../kube/cluster-cache.ts';
import type { Node } from '../kube/objects.ts';
import { AutonomyTracker } from './autonomy-tracker.ts';

function annotated(name: string, annotations: Record<string, string>): Node {
  return {
    metadata: { name, uid: `uid-${name}`, resourceVersion: '1', annotations },
    spec: {},
    status: {},
  };
}

function tracker(): { writer: MemoryWriter; autonomy: AutonomyTracker } {
  const clock = new FakeClock();
  const writer = new MemoryWriter(new ClusterCache(), clock);
  return { writer, autonomy: new AutonomyTracker(writer, silentLogger(), 'node-controller') };
}

describe('invalid autonomy annotations', () => {
  it('get one Warning Event on the node naming the value, and the node is not autonomous', () => {
    const { writer, autonomy } = tracker();
    const node = annotated('edge-1', { 'edgebox.io/autonomy-duration': '1 hour' });
    expect(autonomy.settingFor(node).kind).toBe('invalid');
    expect(writer.events).toEqual([
      {
        involved: { kind: 'Node', name: 'edge-1', uid: 'uid-edge-1' },
        type: 'Warning',
        reason: 'InvalidAutonomyAnnotation',
        message:
          'annotation edgebox.io/autonomy-duration="1 hour" is not a Go duration (such as 30m, 1h, 0 for no limit); the node is treated as not autonomous',
        component: 'node-controller',
      },
    ]);
    // Every pass reads the annotations again; the owner is told once, not every 5 s.
    autonomy.settingFor(node);
    autonomy.settingFor(node);
    expect(writer.events).toHaveLength(1);
  });

  it('are reported again when the value changes, and after they were fixed and broken again', () => {
    const { writer, autonomy } = tracker();
    autonomy.settingFor(annotated('edge-1', { 'edgebox.io/autonomy': 'yes' }));
    autonomy.settingFor(annotated('edge-1', { 'edgebox.io/autonomy': 'on' }));
    expect(autonomy.settingFor(annotated('edge-1', { 'edgebox.io/autonomy': 'true' })).kind).toBe(
      'autonomous',
    );
    autonomy.settingFor(annotated('edge-1', { 'edgebox.io/autonomy': 'on' }));
    // A second node with the same mistake is told too.
    autonomy.settingFor(annotated('edge-2', { 'edgebox.io/autonomy': 'on' }));
    expect(
      writer.events.map((e) => `${e.involved.name}: ${e.message.split(' is ')[0] ?? ''}`),
    ).toEqual([
      'edge-1: annotation edgebox.io/autonomy="yes"',
      'edge-1: annotation edgebox.io/autonomy="on"',
      'edge-1: annotation edgebox.io/autonomy="on"',
      'edge-2: annotation edgebox.io/autonomy="on"',
    ]);
  });

  it('record nothing for valid or absent annotations', () => {
    const { writer, autonomy } = tracker();
    autonomy.settingFor(annotated('a', { 'edgebox.io/autonomy': 'true' }));
    autonomy.settingFor(annotated('b', { 'node.openyurt.io/autonomy-duration': '0' }));
    autonomy.settingFor(annotated('c', {}));
    expect(writer.events).toEqual([]);
  });
});
