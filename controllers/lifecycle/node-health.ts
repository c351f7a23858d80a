import type { Lease, Node, NodeCondition } from '../kube/objects.ts';
import { findCondition, formatTime, parseMicroTime, parseTime } from '../kube/objects.ts';
import {
  CONDITION_DISK_PRESSURE,
  CONDITION_MEMORY_PRESSURE,
  CONDITION_PID_PRESSURE,
  CONDITION_READY,
} from '../kube/well-known.ts';

/** What the monitor remembers about a node between passes (upstream's nodeHealthData). */
export interface NodeHealth {
  /** Local time of the last heartbeat seen (status or lease); grace periods count from here. */
  probeTimestamp: number;
  readyTransitionTimestamp: number;
  /** The Ready condition as last seen or written. */
  savedReady: NodeCondition | undefined;
  /** renewTime (µs) of the node's Lease as last seen; undefined when none was kept. */
  leaseRenewMicros: number | undefined;
}

export interface GracePeriods {
  monitorGraceMs: number;
  startupGraceMs: number;
}

export interface HealthDecision {
  /** Health to remember when no write is needed, or when the write failed. */
  health: NodeHealth;
  /** Ready as it was in the node object this pass started from (synthesised when missing). */
  observedReady: NodeCondition;
  /** Ready after this pass's decision; undefined when the node never had one and none was made. */
  currentReady: NodeCondition | undefined;
  /** Conditions to write because the grace period ran out, and the health to keep once written. */
  update?: { conditions: NodeCondition[]; healthAfterWrite: NodeHealth };
}

/** The conditions set to Unknown when heartbeats stop; NetworkUnavailable belongs to the network plugin. */
const CONDITIONS_SET_UNKNOWN = [
  CONDITION_READY,
  CONDITION_MEMORY_PRESSURE,
  CONDITION_DISK_PRESSURE,
  CONDITION_PID_PRESSURE,
];

export const REASON_STATUS_UNKNOWN = 'NodeStatusUnknown';
export const MESSAGE_STATUS_UNKNOWN = 'Kubelet stopped posting node status.';
export const REASON_NEVER_UPDATED = 'NodeStatusNeverUpdated';
export const MESSAGE_NEVER_UPDATED = 'Kubelet never posted node status.';

function sameCondition(a: NodeCondition | undefined, b: NodeCondition | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.type === b.type &&
    a.status === b.status &&
    a.reason === b.reason &&
    a.message === b.message &&
    a.lastHeartbeatTime === b.lastHeartbeatTime &&
    a.lastTransitionTime === b.lastTransitionTime
  );
}

/**
 * One node's step of the health monitor (upstream's tryUpdateNodeHealth),
 * as a pure function: a heartbeat is a change of the Ready condition's
 * lastHeartbeatTime or an advance of the Lease's renewTime; once neither has
 * been seen for the grace period (startup grace for a node never Ready), the
 * pressure and Ready conditions go Unknown.
 */
export function decideNodeHealth(
  node: Node,
  lease: Lease | undefined,
  saved: NodeHealth | undefined,
  now: number,
  grace: GracePeriods,
): HealthDecision {
  const created = parseTime(node.metadata.creationTimestamp) ?? now;
  const conditions = node.status.conditions ?? [];
  const currentReady = findCondition(conditions, CONDITION_READY);
  let observedReady: NodeCondition;
  let gracePeriod: number;
  let health: NodeHealth | undefined = saved === undefined ? undefined : { ...saved };

  if (currentReady === undefined) {
    // Never posted: pretend it was Unknown since creation, and give it the startup grace.
    const createdText = node.metadata.creationTimestamp ?? formatTime(created);
    observedReady = {
      type: CONDITION_READY,
      status: 'Unknown',
      lastHeartbeatTime: createdText,
      lastTransitionTime: createdText,
    };
    gracePeriod = grace.startupGraceMs;
    if (health !== undefined) {
      health.savedReady = undefined;
    } else {
      health = {
        probeTimestamp: created,
        readyTransitionTimestamp: created,
        savedReady: undefined,
        leaseRenewMicros: undefined,
      };
    }
  } else {
    observedReady = { ...currentReady };
    gracePeriod = grace.monitorGraceMs;
  }

  // Read after the block above, as upstream does: a node without Ready keeps its old probe time.
  const savedCondition = health?.savedReady;
  const savedLease = health?.leaseRenewMicros;
  const fresh = (transition: number): NodeHealth => ({
    probeTimestamp: now,
    readyTransitionTimestamp: transition,
    savedReady: currentReady === undefined ? undefined : { ...currentReady },
    leaseRenewMicros: undefined,
  });
  if (health === undefined) {
    health = fresh(now);
  } else if (savedCondition === undefined && currentReady !== undefined) {
    health = fresh(now);
  } else if (savedCondition !== undefined && currentReady === undefined) {
    // The Ready condition was removed; upstream starts over from now.
    health = fresh(now);
  } else if (
    savedCondition !== undefined &&
    currentReady !== undefined &&
    savedCondition.lastHeartbeatTime !== currentReady.lastHeartbeatTime
  ) {
    const transitioned = savedCondition.lastTransitionTime !== currentReady.lastTransitionTime;
    health = fresh(transitioned ? now : health.readyTransitionTimestamp);
  }
  const h = health as NodeHealth;

  // Always take a renewed lease as a heartbeat.
  const observedLease = parseMicroTime(lease?.spec.renewTime);
  if (
    lease !== undefined &&
    observedLease !== undefined &&
    (savedLease === undefined || savedLease < observedLease)
  ) {
    h.leaseRenewMicros = observedLease;
    h.probeTimestamp = now;
  }

  if (now > h.probeTimestamp + gracePeriod) {
    const nowText = formatTime(now);
    const next: NodeCondition[] = conditions.map((c) => ({ ...c }));
    const changed: NodeCondition[] = [];
    for (const type of CONDITIONS_SET_UNKNOWN) {
      const c = findCondition(next, type);
      if (c === undefined) {
        const added: NodeCondition = {
          type,
          status: 'Unknown',
          reason: REASON_NEVER_UPDATED,
          message: MESSAGE_NEVER_UPDATED,
          lastHeartbeatTime: node.metadata.creationTimestamp ?? formatTime(created),
          lastTransitionTime: nowText,
        };
        next.push(added);
        changed.push(added);
      } else if (c.status !== 'Unknown') {
        c.status = 'Unknown';
        c.reason = REASON_STATUS_UNKNOWN;
        c.message = MESSAGE_STATUS_UNKNOWN;
        c.lastTransitionTime = nowText;
        changed.push(c);
      }
    }
    const newReady = findCondition(next, CONDITION_READY);
    if (!sameCondition(newReady, observedReady)) {
      return {
        health: h,
        observedReady,
        currentReady: newReady,
        update: {
          conditions: changed,
          healthAfterWrite: {
            probeTimestamp: h.probeTimestamp,
            readyTransitionTimestamp: now,
            savedReady: newReady === undefined ? undefined : { ...newReady },
            leaseRenewMicros: observedLease,
          },
        },
      };
    }
    return { health: h, observedReady, currentReady: newReady };
  }
  return { health: h, observedReady, currentReady };
}
