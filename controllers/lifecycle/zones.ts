import type { Node, NodeCondition } from '../kube/objects.ts';
import {
  LABEL_EXCLUDE_DISRUPTION,
  LABEL_REGION,
  LABEL_REGION_BETA,
  LABEL_ZONE,
  LABEL_ZONE_BETA,
} from '../kube/well-known.ts';

export type ZoneState = 'Initial' | 'Normal' | 'PartialDisruption' | 'FullDisruption';

/**
 * The zone a node belongs to: region and zone labels (the deprecated beta
 * labels win when present, as in upstream's GetZoneKey), joined with a NUL so
 * a colon in either cannot make two zones collide. '' for no zone.
 */
export function zoneKey(node: Node): string {
  const labels = node.metadata.labels;
  if (labels === undefined) return '';
  const zone = labels[LABEL_ZONE_BETA] ?? labels[LABEL_ZONE] ?? '';
  const region = labels[LABEL_REGION_BETA] ?? labels[LABEL_REGION] ?? '';
  if (region === '' && zone === '') return '';
  return `${region}:\x00:${zone}`;
}

/** A zone key as people read it, for logs and metric labels. */
export function zoneDisplayName(key: string): string {
  if (key === '') return '(none)';
  const [region, zone] = key.split(':\x00:');
  return region === '' ? (zone ?? '') : `${region}/${zone ?? ''}`;
}

export function isExcludedFromDisruption(node: Node): boolean {
  return node.metadata.labels?.[LABEL_EXCLUDE_DISRUPTION] !== undefined;
}

/**
 * Upstream's ComputeZoneState: Full when no node is Ready, Partial when more
 * than two are not Ready and they are at least `unhealthyThreshold` of the
 * zone, Normal otherwise. A missing Ready condition counts as not Ready.
 */
export function computeZoneState(
  readyConditions: readonly (NodeCondition | undefined)[],
  unhealthyThreshold: number,
): { notReady: number; state: ZoneState } {
  let ready = 0;
  let notReady = 0;
  for (const c of readyConditions) {
    if (c !== undefined && c.status === 'True') ready++;
    else notReady++;
  }
  if (ready === 0 && notReady > 0) return { notReady, state: 'FullDisruption' };
  // Go compares in float32; the threshold and the ratio are rounded alike.
  if (
    notReady > 2 &&
    Math.fround(notReady / (notReady + ready)) >= Math.fround(unhealthyThreshold)
  ) {
    return { notReady, state: 'PartialDisruption' };
  }
  return { notReady, state: 'Normal' };
}

export interface EvictionRates {
  /** --node-eviction-rate */
  evictionQps: number;
  /** --secondary-node-eviction-rate */
  secondaryEvictionQps: number;
  /** --large-cluster-size-threshold */
  largeClusterThreshold: number;
}

/**
 * The NoExecute tainting rate for a zone in a state (setLimiterInZone):
 * Normal and Full use the normal rate; Partial uses the secondary rate in a
 * zone of more than `largeClusterThreshold` nodes and stops altogether in a
 * smaller one.
 */
export function zoneEvictionQps(state: ZoneState, zoneSize: number, rates: EvictionRates): number {
  switch (state) {
    case 'PartialDisruption':
      return zoneSize > rates.largeClusterThreshold ? rates.secondaryEvictionQps : 0;
    case 'Normal':
    case 'FullDisruption':
    case 'Initial':
      return rates.evictionQps;
  }
}
