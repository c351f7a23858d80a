import type { Logger } from 'pino';
import type { ClusterWriter } from '../actuator/cluster-writer.ts';
import type { Node, NodeCondition } from '../kube/objects.ts';
import { findCondition } from '../kube/objects.ts';
import { CONDITION_EDGE_AUTONOMY } from '../kube/well-known.ts';
import type { AutonomySetting } from './annotations.ts';
import { desiredEdgeAutonomyCondition, type AutonomyState } from './edge-autonomy.ts';

/**
 * Writes the node's EdgeAutonomy condition when what it should say changed
 * (strategic merge on status.conditions, so other conditions are untouched).
 */
export async function reconcileEdgeAutonomy(
  writer: ClusterWriter,
  logger: Logger,
  node: Node,
  setting: AutonomySetting,
  state: AutonomyState,
  ready: NodeCondition | undefined,
  now: number,
): Promise<void> {
  const existing = findCondition(node.status.conditions, CONDITION_EDGE_AUTONOMY);
  const desired = desiredEdgeAutonomyCondition(setting, state, ready, existing, now);
  if (desired === undefined || desired === existing) return;
  try {
    await writer.patchNodeConditions(node.metadata.name, [desired]);
    logger.info(
      { node: node.metadata.name, reason: desired.reason, message: desired.message },
      'EdgeAutonomy condition updated',
    );
  } catch (err) {
    logger.error(
      { node: node.metadata.name, err },
      'writing the EdgeAutonomy condition failed; will retry next pass',
    );
  }
}
