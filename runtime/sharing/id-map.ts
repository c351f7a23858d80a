import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Guest ids 0..count-1 as host ids hostBase..hostBase+count-1. The guest is
 * root in its VM and picks any owner for the files it makes; through the
 * mapping they belong to unprivileged host ids, never to host root.
 */
export interface IdMap {
  hostBase: number;
  count: number;
}

/**
 * Above any range `/etc/subuid` hands out (100000 upwards in steps of 65536 for
 * the first tens of thousands of users) and below 2^31, so no host account and
 * no rootless container owns these ids.
 */
export const DEFAULT_GUEST_ID_MAP: IdMap = { hostBase: 0x70000000, count: 65536 };

/** The host id the guest's root becomes. */
export function mappedRoot(map: IdMap): number {
  return map.hostBase;
}

/** An unprivileged host id outside the guest's range, for the VMM: no guest file is its. */
export function vmmId(map: IdMap): number {
  return map.hostBase + map.count;
}

/**
 * util-linux's `unshare --map-users` writes a user namespace's maps through
 * shadow-utils' `newuidmap PID INNER OUTER COUNT` (and newgidmap), which grant
 * only ranges delegated in /etc/subuid. The runtime is root and may write the
 * maps itself, so `dir` gets two scripts of that interface that do just that;
 * they go first on unshare's PATH. Root-owned, so nothing the guest's ids own
 * can change them.
 */
export async function writeIdMapHelpers(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const [name, file] of [
    ['newuidmap', 'uid_map'],
    ['newgidmap', 'gid_map'],
  ] as const) {
    const path = join(dir, name);
    await writeFile(
      path,
      `#!/bin/sh\n# ${name} PID INNER OUTER COUNT, for root\nprintf '%s %s %s\\n' "$2" "$3" "$4" > "/proc/$1/${file}"\n`,
    );
    await chmod(path, 0o700);
  }
}
