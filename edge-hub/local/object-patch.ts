import fastJsonPatch from 'fast-json-patch';
import {
  jsonMergePatch,
  patchMetaFor,
  strategicMergePatch,
} from '../../src/kube/strategic-merge-patch.ts';

export type PatchType = 'merge' | 'strategic' | 'json';

export function patchTypeOf(contentType: string | undefined): PatchType | undefined {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase();
  if (type === 'application/merge-patch+json') return 'merge';
  if (type === 'application/strategic-merge-patch+json') return 'strategic';
  if (type === 'application/json-patch+json') return 'json';
  return undefined;
}

/**
 * Applies a patch of the given type to a cached object of API group `group`
 * (a strategic merge patch merges lists by the object's kind's patch tags);
 * an Error says why it cannot be applied (400 for the client).
 */
export function applyPatch(
  target: Record<string, unknown>,
  group: string,
  type: PatchType,
  body: Buffer,
): unknown {
  let patch: unknown;
  try {
    patch = JSON.parse(body.toString('utf8'));
  } catch (err) {
    return new Error(`the patch is not valid JSON: ${String(err)}`);
  }
  try {
    switch (type) {
      case 'merge':
        return jsonMergePatch(target, patch);
      case 'strategic': {
        const kind = typeof target.kind === 'string' ? target.kind : '';
        return strategicMergePatch(target, patch, patchMetaFor(group, kind));
      }
      case 'json': {
        if (!Array.isArray(patch)) return new Error('a JSON patch must be an array of operations');
        return fastJsonPatch.applyPatch(
          structuredClone(target),
          patch as fastJsonPatch.Operation[],
          true,
          false,
        ).newDocument;
      }
    }
  } catch (err) {
    return new Error(`the ${type} patch cannot be applied: ${String(err)}`);
  }
}
