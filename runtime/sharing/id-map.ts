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
 * Where the sandboxes' ids begin: above any range `/etc/subuid` hands out
 * (100000 upwards in steps of 65536 for the first tens of thousands of users),
 * so no host account and no rootless container owns them.
 */
const FIRST_SANDBOX_ID = 0x70000000;
const GUEST_IDS = 65536;
/** Each sandbox's slot: its guest's 65536 ids, then the same again for its VMM (one used). */
const SLOT_IDS = 2 * GUEST_IDS;
/** Slots a run root hands out: up to 0xB0000000, well below the invalid id 2^32-1. */
export const MAX_ID_SLOTS = 8192;
/** Claims of id slots under the run root, beside the sandboxes, under a dot name no sandbox id takes. */
export const ID_SLOT_DIR = '.id-slots';

/** The ids of slot `slot`: one per sandbox, so no two pods' guests or VMMs share a host id. */
export function idMapForSlot(slot: number): IdMap {
  return { hostBase: FIRST_SANDBOX_ID + slot * SLOT_IDS, count: GUEST_IDS };
}

/** Slot 0, for a VM started by hand (the benchmark's plain boot). */
export const DEFAULT_GUEST_ID_MAP: IdMap = idMapForSlot(0);

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
