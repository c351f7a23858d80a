import { formatGoDuration, parseGoDuration } from '../../src/config/duration.ts';
import type { Node } from '../kube/objects.ts';
import {
  ANNOTATION_AUTONOMY,
  ANNOTATION_AUTONOMY_DURATION,
  ANNOTATION_OPENYURT_AUTONOMY,
  ANNOTATION_OPENYURT_AUTONOMY_DURATION,
} from '../kube/well-known.ts';

/** What a node's annotations say about running offline. */
export type AutonomySetting =
  | { kind: 'none' }
  | { kind: 'disabled'; source: string }
  | {
      kind: 'autonomous';
      /** How long pods stay bound once the node is unreachable; 0 = no limit. */
      durationMs: number;
      /** The annotation(s) it came from, as `key=value`, for messages. */
      source: string;
    }
  | { kind: 'invalid'; problems: string[] };

interface Pair {
  flagKey: string;
  durationKey: string;
}

// edgebox's own names first: they win over OpenYurt's when both are present.
const PAIRS: Pair[] = [
  { flagKey: ANNOTATION_AUTONOMY, durationKey: ANNOTATION_AUTONOMY_DURATION },
  { flagKey: ANNOTATION_OPENYURT_AUTONOMY, durationKey: ANNOTATION_OPENYURT_AUTONOMY_DURATION },
];

function describe(key: string, value: string): string {
  return `${key}=${JSON.stringify(value)}`;
}

function readPair(
  annotations: Record<string, string>,
  pair: Pair,
): AutonomySetting | { kind: 'absent' } {
  const flag = annotations[pair.flagKey];
  const duration = annotations[pair.durationKey];
  if (flag === undefined && duration === undefined) return { kind: 'absent' };
  const problems: string[] = [];
  if (flag !== undefined && flag !== 'true' && flag !== 'false') {
    problems.push(`annotation ${describe(pair.flagKey, flag)} is not "true" or "false"`);
  }
  let durationMs = 0;
  if (duration !== undefined) {
    const parsed = parseGoDuration(duration);
    if (parsed instanceof Error) {
      problems.push(
        `annotation ${describe(pair.durationKey, duration)} is not a Go duration (such as 30m, 1h, 0 for no limit)`,
      );
    } else if (parsed < 0) {
      problems.push(`annotation ${describe(pair.durationKey, duration)} is negative`);
    } else {
      durationMs = parsed;
    }
  }
  if (problems.length > 0) return { kind: 'invalid', problems };
  if (flag === 'false') return { kind: 'disabled', source: describe(pair.flagKey, flag) };
  const sources: string[] = [];
  if (flag !== undefined) sources.push(describe(pair.flagKey, flag));
  if (duration !== undefined) sources.push(describe(pair.durationKey, duration));
  return { kind: 'autonomous', durationMs, source: sources.join(', ') };
}

/**
 * A node is autonomous when annotated `autonomy: "true"` or given an
 * `autonomy-duration` (Go duration, 0 = no limit); an explicit "false"
 * switches it off. edgebox's annotations take precedence over OpenYurt's.
 * Any unreadable value makes the whole setting invalid (the node is then
 * treated as not autonomous and told why with an Event).
 */
export function readAutonomy(node: Node): AutonomySetting {
  const annotations = node.metadata.annotations;
  if (annotations === undefined) return { kind: 'none' };
  for (const pair of PAIRS) {
    const setting = readPair(annotations, pair);
    if (setting.kind !== 'absent') return setting;
  }
  return { kind: 'none' };
}

export function describeDuration(durationMs: number): string {
  return durationMs === 0 ? 'no time limit' : formatGoDuration(durationMs);
}
