import type { Logger } from 'pino';
import { nodeReference, type ClusterWriter } from '../actuator/cluster-writer.ts';
import type { Node } from '../kube/objects.ts';
import { readAutonomy, type AutonomySetting } from './annotations.ts';

export const REASON_INVALID_AUTONOMY = 'InvalidAutonomyAnnotation';

/**
 * Reads each node's autonomy annotations and, the first time a node shows an
 * unreadable value, tells its owner with a Warning Event on the node naming
 * the value (once per distinct value, not once per pass).
 */
export class AutonomyTracker {
  private readonly writer: ClusterWriter;
  private readonly logger: Logger;
  private readonly component: string;
  private readonly reported = new Map<string, string>();

  constructor(writer: ClusterWriter, logger: Logger, component: string) {
    this.writer = writer;
    this.logger = logger;
    this.component = component;
  }

  settingFor(node: Node): AutonomySetting {
    const setting = readAutonomy(node);
    const name = node.metadata.name;
    if (setting.kind !== 'invalid') {
      this.reported.delete(name);
      return setting;
    }
    const text = setting.problems.join('; ');
    if (this.reported.get(name) !== text) {
      this.reported.set(name, text);
      this.logger.warn({ node: name, problems: setting.problems }, 'invalid autonomy annotation');
      this.writer.recordEvent({
        involved: nodeReference(node),
        type: 'Warning',
        reason: REASON_INVALID_AUTONOMY,
        message: `${text}; the node is treated as not autonomous`,
        component: this.component,
      });
    }
    return setting;
  }

  forget(nodeName: string): void {
    this.reported.delete(nodeName);
  }
}
