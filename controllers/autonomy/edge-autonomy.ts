import type { NodeCondition } from '../kube/objects.ts';
import { formatTime, parseTime } from '../kube/objects.ts';
import { CONDITION_EDGE_AUTONOMY } from '../kube/well-known.ts';
import { describeDuration, type AutonomySetting } from './annotations.ts';

export const REASON_AUTONOMOUS = 'Autonomous';
export const REASON_RUNNING_OFFLINE = 'RunningOffline';
export const REASON_AUTONOMY_EXPIRED = 'AutonomyExpired';
export const REASON_AUTONOMY_DISABLED = 'AutonomyDisabled';

/** Where an autonomous node stands, given its Ready condition. */
export type AutonomyState =
  | { kind: 'not-autonomous' }
  | { kind: 'reachable'; durationMs: number; source: string }
  | {
      kind: 'running-offline';
      durationMs: number;
      source: string;
      offlineSince: number;
      /** undefined when there is no time limit */
      until: number | undefined;
    }
  | {
      kind: 'expired';
      durationMs: number;
      source: string;
      offlineSince: number;
      expiredAt: number;
    };

/**
 * Offline means unreachable (Ready Unknown), counted from the moment Ready
 * went Unknown (its lastTransitionTime, which is stored on the node and so
 * survives a leader change). A node reporting Ready=False is talking to us
 * and gets no autonomy: the kubelet itself says it cannot run pods.
 */
export function autonomyState(
  setting: AutonomySetting,
  ready: NodeCondition | undefined,
  now: number,
): AutonomyState {
  if (setting.kind !== 'autonomous') return { kind: 'not-autonomous' };
  const { durationMs, source } = setting;
  if (ready === undefined || ready.status !== 'Unknown') {
    return { kind: 'reachable', durationMs, source };
  }
  const offlineSince = parseTime(ready.lastTransitionTime) ?? now;
  if (durationMs === 0) {
    return { kind: 'running-offline', durationMs, source, offlineSince, until: undefined };
  }
  const until = offlineSince + durationMs;
  if (now < until) return { kind: 'running-offline', durationMs, source, offlineSince, until };
  return { kind: 'expired', durationMs, source, offlineSince, expiredAt: until };
}

/** True while the node's pods must be left alone: unreachable, autonomous, within its duration. */
export function isProtected(state: AutonomyState): boolean {
  return state.kind === 'running-offline';
}

function disabledMessage(setting: AutonomySetting): string {
  switch (setting.kind) {
    case 'disabled':
      return `Autonomy is switched off (${setting.source}); the node is handled as any other node.`;
    case 'invalid':
      return `Autonomy annotations are invalid (${setting.problems.join('; ')}); the node is handled as any other node.`;
    default:
      return 'Autonomy annotations were removed; the node is handled as any other node.';
  }
}

/**
 * The EdgeAutonomy condition a node should carry, or undefined when it
 * should carry none (never autonomous). `existing` keeps lastTransitionTime
 * stable while the status does not change.
 */
export function desiredEdgeAutonomyCondition(
  setting: AutonomySetting,
  state: AutonomyState,
  ready: NodeCondition | undefined,
  existing: NodeCondition | undefined,
  now: number,
): NodeCondition | undefined {
  let status: string;
  let reason: string;
  let message: string;
  switch (state.kind) {
    case 'not-autonomous':
      if (existing === undefined) return undefined;
      status = 'False';
      reason = REASON_AUTONOMY_DISABLED;
      message = disabledMessage(setting);
      break;
    case 'reachable': {
      const since = ready?.lastTransitionTime;
      status = 'True';
      reason = REASON_AUTONOMOUS;
      message =
        `Node is reachable${since === undefined ? '' : ` since ${since}`}; ` +
        (state.durationMs === 0
          ? `if it becomes unreachable its pods stay bound until it is back, with no time limit (${state.source}).`
          : `if it becomes unreachable its pods stay bound for ${describeDuration(state.durationMs)} (${state.source}).`);
      break;
    }
    case 'running-offline':
      status = 'True';
      reason = REASON_RUNNING_OFFLINE;
      message =
        `Node unreachable since ${formatTime(state.offlineSince)}; running offline with its pods bound ` +
        (state.until === undefined
          ? `until it is reachable again, with no time limit (${state.source}).`
          : `until ${formatTime(state.until)} (${describeDuration(state.durationMs)}, ${state.source}).`);
      break;
    case 'expired':
      status = 'False';
      reason = REASON_AUTONOMY_EXPIRED;
      message =
        `Node unreachable since ${formatTime(state.offlineSince)}; its autonomy of ` +
        `${describeDuration(state.durationMs)} (${state.source}) ran out at ${formatTime(state.expiredAt)}; ` +
        'its pods are handled as on any other node.';
      break;
  }
  if (existing?.status === status && existing.reason === reason && existing.message === message) {
    return existing;
  }
  const nowText = formatTime(now);
  return {
    type: CONDITION_EDGE_AUTONOMY,
    status,
    reason,
    message,
    lastHeartbeatTime: nowText,
    lastTransitionTime:
      existing !== undefined &&
      existing.status === status &&
      existing.lastTransitionTime !== undefined
        ? existing.lastTransitionTime
        : nowText,
  };
}
