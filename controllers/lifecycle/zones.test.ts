import { describe, expect, it } from 'vitest';
import type { Node, NodeCondition } from '../kube/objects.ts';
import {
  computeZoneState,
  isExcludedFromDisruption,
  zoneDisplayName,
  zoneEvictionQps,
  zoneKey,
  type ZoneState,
} from './zones.ts';

function labelled(labels: Record<string, string> | undefined): Node {
  return {
    metadata: { name: 'n', uid: 'u', resourceVersion: '1', ...(labels ? { labels } : {}) },
    spec: {},
    status: {},
  };
}

const ZONE = 'topology.kubernetes.io/zone';
const REGION = 'topology.kubernetes.io/region';
const BETA_ZONE = 'failure-domain.beta.kubernetes.io/zone';
const BETA_REGION = 'failure-domain.beta.kubernetes.io/region';

describe('zone key (GetZoneKey)', () => {
  it.each<[string, Record<string, string> | undefined, string, string]>([
    ['region and zone', { [REGION]: 'eu', [ZONE]: 'plant-a' }, 'eu:\x00:plant-a', 'eu/plant-a'],
    ['zone only', { [ZONE]: 'plant-a' }, ':\x00:plant-a', 'plant-a'],
    ['region only', { [REGION]: 'eu' }, 'eu:\x00:', 'eu/'],
    ['no labels', undefined, '', '(none)'],
    ['other labels only', { 'kubernetes.io/os': 'linux' }, '', '(none)'],
    [
      'the deprecated beta labels win',
      { [REGION]: 'eu', [ZONE]: 'new', [BETA_REGION]: 'old-eu', [BETA_ZONE]: 'old' },
      'old-eu:\x00:old',
      'old-eu/old',
    ],
    // A colon in a value cannot make "a:b" + "c" collide with "a" + "b:c".
    ['colons in values', { [REGION]: 'a:b', [ZONE]: 'c' }, 'a:b:\x00:c', 'a:b/c'],
  ])('%s', (_, labels, key, display) => {
    expect(zoneKey(labelled(labels))).toBe(key);
    expect(zoneDisplayName(zoneKey(labelled(labels)))).toBe(display);
  });

  it('keeps the same zone name in two regions apart', () => {
    const a = zoneKey(labelled({ [REGION]: 'eu', [ZONE]: 'z1' }));
    const b = zoneKey(labelled({ [REGION]: 'us', [ZONE]: 'z1' }));
    expect(a).not.toBe(b);
  });
});

describe('exclusion from disruption checks', () => {
  it.each<[Record<string, string> | undefined, boolean]>([
    [{ 'node.kubernetes.io/exclude-disruption': '' }, true], // presence is what counts
    [{ 'node.kubernetes.io/exclude-disruption': 'false' }, true],
    [{ 'node.kubernetes.io/exclude-from-external-load-balancers': '' }, false],
    [undefined, false],
  ])('%j -> %s', (labels, expected) => {
    expect(isExcludedFromDisruption(labelled(labels))).toBe(expected);
  });
});

function readies(ready: number, notReady: number, missing = 0): (NodeCondition | undefined)[] {
  return [
    ...Array.from({ length: ready }, () => ({ type: 'Ready', status: 'True' })),
    ...Array.from({ length: notReady }, (_, i) => ({
      type: 'Ready',
      status: i % 2 === 0 ? 'Unknown' : 'False',
    })),
    ...Array.from({ length: missing }, () => undefined),
  ];
}

describe('zone state (ComputeZoneState) with --unhealthy-zone-threshold 0.55', () => {
  it.each<[number, number, number, ZoneState]>([
    [0, 1, 0, 'FullDisruption'],
    [0, 0, 1, 'FullDisruption'], // no Ready condition counts as not Ready
    [0, 100, 0, 'FullDisruption'],
    [5, 0, 0, 'Normal'],
    [1, 2, 0, 'Normal'], // 67 % but not more than two
    [0, 2, 1, 'FullDisruption'],
    [2, 3, 0, 'PartialDisruption'], // 60 %
    [1, 2, 1, 'PartialDisruption'], // three not Ready of four
    [9, 11, 0, 'PartialDisruption'], // exactly 55 %
    [10, 10, 0, 'Normal'], // 50 %
    [46, 54, 0, 'Normal'], // 54 %
    [45, 55, 0, 'PartialDisruption'],
  ])('%i Ready, %i not Ready, %i without Ready -> %s', (ready, notReady, missing, state) => {
    const result = computeZoneState(readies(ready, notReady, missing), 0.55);
    expect(result).toEqual({ notReady: notReady + missing, state });
  });

  it('an empty zone is Normal', () => {
    expect(computeZoneState([], 0.55)).toEqual({ notReady: 0, state: 'Normal' });
  });

  it('follows the threshold flag', () => {
    expect(computeZoneState(readies(7, 3), 0.3).state).toBe('PartialDisruption');
    expect(computeZoneState(readies(7, 3), 0.31).state).toBe('Normal');
  });
});

describe('tainting rate per zone state (setLimiterInZone)', () => {
  const rates = { evictionQps: 0.1, secondaryEvictionQps: 0.01, largeClusterThreshold: 50 };

  it.each<[ZoneState, number, number]>([
    ['Normal', 1, 0.1],
    ['Normal', 5000, 0.1],
    ['FullDisruption', 3, 0.1],
    ['FullDisruption', 500, 0.1],
    ['PartialDisruption', 51, 0.01],
    ['PartialDisruption', 5000, 0.01],
    ['PartialDisruption', 50, 0], // not more than --large-cluster-size-threshold: stop
    ['PartialDisruption', 3, 0],
  ])('%s zone of %i nodes -> %f nodes/s', (state, size, qps) => {
    expect(zoneEvictionQps(state, size, rates)).toBe(qps);
  });

  it('uses the configured rates', () => {
    const custom = { evictionQps: 2, secondaryEvictionQps: 0.5, largeClusterThreshold: 10 };
    expect(zoneEvictionQps('Normal', 5, custom)).toBe(2);
    expect(zoneEvictionQps('PartialDisruption', 11, custom)).toBe(0.5);
    expect(zoneEvictionQps('PartialDisruption', 10, custom)).toBe(0);
  });
});
