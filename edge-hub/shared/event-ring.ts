/**
 * The recent changes of one shared resource, oldest first, as the
 * apiserver's watch cache keeps them: a watch that resumes from a
 * resourceVersion gets what followed it, or "expired" when the ring no
 * longer reaches back that far (the client re-lists: 410 Gone).
 */

/** One object as the shared resource holds it: its JSON and what selectors read of it. */
export interface SharedObject {
  /** `namespace/name` (or `name` for cluster-scoped objects). */
  key: string;
  namespace: string;
  labels: Record<string, string> | undefined;
  /** The parsed object (selectors read its fields). */
  object: unknown;
  /** Its JSON as upstream served it. */
  raw: Buffer;
}

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One change: the object after it (or as deleted) and, for a selector's view, the one before. */
export interface SharedEvent {
  type: ChangeType;
  /** The resourceVersion the resource is at once this change is applied. */
  rv: bigint;
  current: SharedObject;
  previous: SharedObject | undefined;
}

/** resourceVersions as the hub compares them: decimal integers (etcd revisions); else undefined. */
export function parseResourceVersion(text: string): bigint | undefined {
  return /^\d{1,20}$/.test(text) ? BigInt(text) : undefined;
}

export class EventRing {
  readonly #capacity: number;
  #events: SharedEvent[] = [];
  /** A watch from here or later is answered from the ring; older ones are expired. */
  #floor: bigint;

  constructor(capacity: number, floor: bigint) {
    if (!(capacity >= 1)) throw new Error(`an event ring holds at least 1 event, not ${capacity}`);
    this.#capacity = capacity;
    this.#floor = floor;
  }

  /** The oldest resourceVersion a watch may resume from. */
  get floor(): bigint {
    return this.#floor;
  }

  push(event: SharedEvent): void {
    this.#events.push(event);
    if (this.#events.length > this.#capacity) {
      const dropped = this.#events.shift();
      // Who saw the dropped event may still resume; who saw only what preceded it may not.
      if (dropped !== undefined) this.#floor = dropped.rv;
    }
  }

  /** Forgets every event: a re-list starts a new history at `floor`. */
  reset(floor: bigint): void {
    this.#events = [];
    this.#floor = floor;
  }

  /** The events after `rv`, oldest first, or 'expired' when the ring no longer reaches back to it. */
  since(rv: bigint): readonly SharedEvent[] | 'expired' {
    if (rv < this.#floor) return 'expired';
    return this.#events.filter((e) => e.rv > rv);
  }
}
