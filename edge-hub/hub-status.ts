import { z } from 'zod';
import { cacheLossSchema } from './cache/store-records.ts';

const upstreamStateSchema = z.enum(['unknown', 'up', 'down']);

/** The JSON `/edgebox/status` answers; `edgebox hub status` parses it with this schema. */
export const hubStatusSchema = z.object({
  nodeName: z.string(),
  upstream: z.object({
    state: upstreamStateSchema,
    servers: z.array(
      z.object({
        name: z.string(),
        state: upstreamStateSchema,
        since: z.string(),
        consecutiveFailures: z.number(),
        consecutiveSuccesses: z.number(),
        lastError: z.string().nullable(),
        lastProbe: z.string().nullable(),
      }),
    ),
  }),
  cache: z.array(
    z.object({
      component: z.string(),
      resource: z.string(),
      objects: z.number(),
      lastSync: z.string().nullable(),
    }),
  ),
  /** The store was unusable at start and moved aside: the node lost its cache. */
  cacheLost: cacheLossSchema.nullable().default(null),
  offlineWatches: z.number(),
  proxiedStreams: z.number(),
});

export type HubStatus = z.infer<typeof hubStatusSchema>;
