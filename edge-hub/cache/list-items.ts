import type { CacheStore } from './cache-store.ts';
import type { ResourceRef } from './keys.ts';
import { DIGESTED_LIST_BYTES, type ListFingerprint } from './list-fingerprint.ts';
import type { ListStaging } from './list-staging.ts';
import type { PreparedObject } from './prepared-object.ts';
import type { CompiledScope } from './scope.ts';

/**
 * Answers up to this size are held whole until they end, so that one
 * answered again is recognised by its bytes without being parsed (beyond it
 * no fingerprint is kept anyway). Larger ones are parsed as they stream and
 * their items staged in the store as they come: never held whole.
 */
export const STREAMED_LIST_BYTES = DIGESTED_LIST_BYTES;

/**
 * A list's items on their way to the store (a LIST's, or a watch-list's
 * initial events): in memory while they are few, staged in a file
 * (CacheStore.stageList) once they pass `spillBytes`, so a list of any size
 * costs memory for about one staged batch.
 */
export class ListItems {
  readonly #store: CacheStore;
  readonly #spillBytes: number;
  #items: PreparedObject[] = [];
  #bytes = 0;
  #staging: ListStaging | undefined;

  constructor(store: CacheStore, spillBytes: number) {
    this.#store = store;
    this.#spillBytes = spillBytes;
  }

  add(item: PreparedObject): void {
    if (this.#staging !== undefined) {
      this.#staging.add(item);
      return;
    }
    this.#items.push(item);
    this.#bytes += item.raw.length;
    if (this.#bytes > this.#spillBytes) {
      const staging = this.#store.stageList();
      for (const held of this.#items) staging.add(held);
      this.#items = [];
      this.#staging = staging;
    }
  }

  /**
   * Takes back an item not yet staged (a watch-list's initial object deleted
   * before its end); false once the items are staged.
   */
  remove(id: string): boolean {
    if (this.#staging !== undefined) return false;
    const at = this.#items.findIndex((item) => item.id === id);
    if (at >= 0) {
      this.#bytes -= this.#items[at]?.raw.length ?? 0;
      this.#items.splice(at, 1);
    }
    return true;
  }

  discard(): void {
    this.#staging?.discard();
    this.#items = [];
  }

  replace(
    component: string,
    ref: ResourceRef,
    input: { scope: CompiledScope; rv: string; kind: string | null; fingerprint?: ListFingerprint },
  ): Promise<void> {
    if (this.#staging !== undefined) {
      return this.#store.replaceStagedList(component, ref, this.#staging, input);
    }
    return this.#store.replaceList(component, ref, { ...input, items: this.#items });
  }
}
