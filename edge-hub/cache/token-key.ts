import { createHash } from 'node:crypto';
import { z } from 'zod';
import { tokenRequestSchema } from '../../src/kube/token-request.ts';
import { keys } from './keys.ts';

export const tokenResponseSchema = z.looseObject({
  status: z.looseObject({ token: z.string().min(1), expirationTimestamp: z.string() }),
});

/**
 * Key of the token a component got for one service account, audience set and
 * bound object. Tokens are only ever served back under the same key, so a
 * component never gets another component's token or another audience's.
 */
export function tokenStoreKey(
  component: string,
  namespace: string,
  serviceAccount: string,
  requestBody: Buffer | undefined,
): string | Error {
  let parsed: unknown = {};
  if (requestBody !== undefined && requestBody.length > 0) {
    try {
      parsed = JSON.parse(requestBody.toString());
    } catch {
      // kubelet sends protobuf; its encoding of one request is deterministic, so the
      // bytes themselves identify the request (expirationSeconds included).
      const hash = createHash('sha256').update(requestBody).digest('hex').slice(0, 32);
      return keys.token(component, namespace, serviceAccount, `raw-${hash}`);
    }
  }
  const request = tokenRequestSchema.safeParse(parsed);
  if (!request.success)
    return new Error(`TokenRequest body is malformed: ${request.error.message}`);
  const spec = request.data.spec ?? {};
  const bound = spec.boundObjectRef ?? undefined;
  const canonical = JSON.stringify({
    audiences: [...(spec.audiences ?? [])].sort(),
    bound:
      bound === undefined
        ? null
        : [bound.kind ?? '', bound.apiVersion ?? '', bound.name ?? '', bound.uid ?? ''],
  });
  const hash = createHash('sha256').update(canonical).digest('hex').slice(0, 32);
  return keys.token(component, namespace, serviceAccount, hash);
}
