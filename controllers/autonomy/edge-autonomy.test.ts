import { describe, expect, it } from 'vitest';
import type { NodeCondition } from '../kube/objects.ts';
import { formatTime } from '../kube/objects.ts';
import type { AutonomySetting } from './annotations.ts';
import {
  autonomyState,
  desiredEdgeAutonomyCondition,
  isProtected,
  type AutonomyState,
} from './edge-autonomy.ts';

const T0 = Date.UTC(2025, 0, 1);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const SOURCE = 'edgebox.io/autonomy-duration="1h"';

const oneHour: AutonomySetting = { kind: 'autonomous', durationMs: HOUR, source: SOURCE };
const noLimit: AutonomySetting = {
  kind: 'autonomous',
  durationMs: 0,
  source: 'edgebox.io/autonomy="true"',
};

function ready(status: string, since: number): NodeCondition {
  return { type: 'Ready', status, lastTransitionTime: formatTime(since) };
}

describe('autonomy state', () => {
  it.each<
    [string, AutonomySetting, NodeCondition | undefined, number, AutonomyState['kind'], boolean]
  >([
    ['not annotated', { kind: 'none' }, ready('Unknown', T0), T0, 'not-autonomous', false],
    [
      'switched off',
      { kind: 'disabled', source: 'x' },
      ready('Unknown', T0),
      T0,
      'not-autonomous',
      false,
    ],
    [
      'invalid',
      { kind: 'invalid', problems: ['p'] },
      ready('Unknown', T0),
      T0,
      'not-autonomous',
      false,
    ],
    ['Ready', oneHour, ready('True', T0), T0 + 5 * HOUR, 'reachable', false],
    // Ready=False is the kubelet talking: it says it cannot run pods.
    ['not Ready but reachable', oneHour, ready('False', T0), T0 + MINUTE, 'reachable', false],
    ['no Ready condition yet', oneHour, undefined, T0, 'reachable', false],
    [
      'unreachable within the hour',
      oneHour,
      ready('Unknown', T0),
      T0 + HOUR - 1,
      'running-offline',
      true,
    ],
    [
      'unreachable for exactly the hour',
      oneHour,
      ready('Unknown', T0),
      T0 + HOUR,
      'expired',
      false,
    ],
    ['unreachable past the hour', oneHour, ready('Unknown', T0), T0 + 2 * HOUR, 'expired', false],
    [
      'unreachable a year with no limit',
      noLimit,
      ready('Unknown', T0),
      T0 + 8760 * HOUR,
      'running-offline',
      true,
    ],
  ])('%s', (_, setting, readyCondition, now, kind, protectedPods) => {
    const state = autonomyState(setting, readyCondition, now);
    expect(state.kind).toBe(kind);
    expect(isProtected(state)).toBe(protectedPods);
  });

  it('counts the autonomy from when Ready went Unknown', () => {
    expect(autonomyState(oneHour, ready('Unknown', T0), T0 + 10 * MINUTE)).toEqual({
      kind: 'running-offline',
      durationMs: HOUR,
      source: SOURCE,
      offlineSince: T0,
      until: T0 + HOUR,
    });
    expect(autonomyState(oneHour, ready('Unknown', T0), T0 + 3 * HOUR)).toEqual({
      kind: 'expired',
      durationMs: HOUR,
      source: SOURCE,
      offlineSince: T0,
      expiredAt: T0 + HOUR,
    });
  });
});

describe('the EdgeAutonomy condition', () => {
  function desired(
    setting: AutonomySetting,
    readyCondition: NodeCondition | undefined,
    now: number,
    existing?: NodeCondition,
  ): NodeCondition | undefined {
    const state = autonomyState(setting, readyCondition, now);
    return desiredEdgeAutonomyCondition(setting, state, readyCondition, existing, now);
  }

  it('is True/Autonomous while the node is reachable', () => {
    expect(desired(oneHour, ready('True', T0), T0 + MINUTE)).toEqual({
      type: 'EdgeAutonomy',
      status: 'True',
      reason: 'Autonomous',
      message:
        'Node is reachable since 2025-01-01T00:00:00Z; if it becomes unreachable its pods stay bound for 1h0m0s (edgebox.io/autonomy-duration="1h").',
      lastHeartbeatTime: formatTime(T0 + MINUTE),
      lastTransitionTime: formatTime(T0 + MINUTE),
    });
    expect(desired(noLimit, ready('True', T0), T0)?.message).toBe(
      'Node is reachable since 2025-01-01T00:00:00Z; if it becomes unreachable its pods stay bound until it is back, with no time limit (edgebox.io/autonomy="true").',
    );
  });

  it('is True/RunningOffline within the autonomy, saying since when and until when', () => {
    const c = desired(oneHour, ready('Unknown', T0), T0 + 10 * MINUTE);
    expect(c).toMatchObject({ status: 'True', reason: 'RunningOffline' });
    expect(c?.message).toBe(
      'Node unreachable since 2025-01-01T00:00:00Z; running offline with its pods bound until 2025-01-01T01:00:00Z (1h0m0s, edgebox.io/autonomy-duration="1h").',
    );
    expect(desired(noLimit, ready('Unknown', T0), T0 + 10 * HOUR)?.message).toBe(
      'Node unreachable since 2025-01-01T00:00:00Z; running offline with its pods bound until it is reachable again, with no time limit (edgebox.io/autonomy="true").',
    );
  });

  it('is False/AutonomyExpired after it, saying when it ran out', () => {
    const c = desired(oneHour, ready('Unknown', T0), T0 + 2 * HOUR);
    expect(c).toMatchObject({ status: 'False', reason: 'AutonomyExpired' });
    expect(c?.message).toBe(
      'Node unreachable since 2025-01-01T00:00:00Z; its autonomy of 1h0m0s (edgebox.io/autonomy-duration="1h") ran out at 2025-01-01T01:00:00Z; its pods are handled as on any other node.',
    );
  });

  it('is absent on a node that was never autonomous', () => {
    expect(desired({ kind: 'none' }, ready('Unknown', T0), T0)).toBeUndefined();
    expect(desired({ kind: 'invalid', problems: ['x'] }, ready('True', T0), T0)).toBeUndefined();
  });

  it.each<[string, AutonomySetting, string]>([
    [
      'removed',
      { kind: 'none' },
      'Autonomy annotations were removed; the node is handled as any other node.',
    ],
    [
      'switched off',
      { kind: 'disabled', source: 'edgebox.io/autonomy="false"' },
      'Autonomy is switched off (edgebox.io/autonomy="false"); the node is handled as any other node.',
    ],
    [
      'made invalid',
      {
        kind: 'invalid',
        problems: ['annotation edgebox.io/autonomy="yes" is not "true" or "false"'],
      },
      'Autonomy annotations are invalid (annotation edgebox.io/autonomy="yes" is not "true" or "false"); the node is handled as any other node.',
    ],
  ])('turns False/AutonomyDisabled once autonomy is %s', (_, setting, message) => {
    const existing = desired(oneHour, ready('True', T0), T0) as NodeCondition;
    expect(desired(setting, ready('True', T0), T0 + HOUR, existing)).toMatchObject({
      status: 'False',
      reason: 'AutonomyDisabled',
      message,
      lastTransitionTime: formatTime(T0 + HOUR),
    });
  });

  it('keeps lastTransitionTime while the status stays, and returns the existing condition when nothing changed', () => {
    const reachable = desired(oneHour, ready('True', T0), T0) as NodeCondition;
    expect(desired(oneHour, ready('True', T0), T0 + HOUR, reachable)).toBe(reachable);
    const offline = desired(oneHour, ready('Unknown', T0 + HOUR), T0 + HOUR, reachable);
    expect(offline).toMatchObject({
      reason: 'RunningOffline',
      lastTransitionTime: formatTime(T0), // True -> True
      lastHeartbeatTime: formatTime(T0 + HOUR),
    });
    const expired = desired(
      oneHour,
      ready('Unknown', T0 + HOUR),
      T0 + 2 * HOUR,
      offline,
    ) as NodeCondition;
    expect(expired).toMatchObject({
      status: 'False',
      lastTransitionTime: formatTime(T0 + 2 * HOUR),
    });
  });
});
