import { readFile } from 'node:fs/promises';

/**
 * A process as `pid` plus its start time (clock ticks after boot, field 22 of
 * /proc/PID/stat): a pid alone may name an unrelated process once the first
 * has died and the number has been reused, the pair never does.
 */
export interface ProcessIdentity {
  pid: number;
  startTime: number;
}

/** The start time of a running process, or undefined when there is none with that pid. */
export async function processStartTime(pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const value = Number(fields[19]);
  return Number.isInteger(value) ? value : undefined;
}

/** Whether `identity` still names a live process (same pid, same start time). */
export async function sameProcessRunning(identity: ProcessIdentity): Promise<boolean> {
  return (await processStartTime(identity.pid)) === identity.startTime;
}

/** `pid startTime`, the form pid files hold. */
export function formatIdentity(identity: ProcessIdentity): string {
  return `${identity.pid} ${identity.startTime}\n`;
}

/** Reads `pid startTime` (or a bare pid, as older runtimes wrote; its start time is then unknown). */
export function parseIdentity(text: string): { pid: number; startTime?: number } | undefined {
  const [pidText, startText] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const startTime = Number(startText);
  return startText !== undefined && Number.isInteger(startTime) ? { pid, startTime } : { pid };
}
