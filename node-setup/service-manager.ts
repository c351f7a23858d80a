import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CliError } from '../src/cli-error.ts';

/** What `edgebox node enable` and `disable` ask of the node's service manager. */
export interface ServiceManager {
  /** `enable --now`, `disable --now` or `restart`, as systemctl words them. */
  apply(action: ServiceAction, unit: string): Promise<void>;
}

export type ServiceAction = 'enable --now' | 'disable --now' | 'restart';

/** systemd, through systemctl. */
export class Systemctl implements ServiceManager {
  async apply(action: ServiceAction, unit: string): Promise<void> {
    try {
      await promisify(execFile)('systemctl', [...action.split(' '), unit]);
    } catch (err) {
      const detail = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
      throw new CliError(`systemctl ${action} ${unit} failed: ${detail}`);
    }
  }
}
