import { z } from 'zod';

/**
 * An authentication.k8s.io/v1 TokenRequest as clients POST it to
 * serviceaccounts/<name>/token. Go clients write a nil list or pointer as
 * `null` (these fields have no omitempty), so each may be null.
 */
export const tokenRequestSpecSchema = z.looseObject({
  audiences: z.array(z.string()).nullish(),
  expirationSeconds: z.number().int().nullish(),
  boundObjectRef: z
    .looseObject({
      kind: z.string().optional(),
      apiVersion: z.string().optional(),
      name: z.string().optional(),
      uid: z.string().optional(),
    })
    .nullish(),
});
export type TokenRequestSpec = z.infer<typeof tokenRequestSpecSchema>;

export const tokenRequestSchema = z.looseObject({ spec: tokenRequestSpecSchema.nullish() });
