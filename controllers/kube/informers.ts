import {
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { ClusterCache } from './cluster-cache.ts';
import { LeaseSchema, NodeSchema, PodSchema, podKey } from './objects.ts';
import type { RestClient } from './rest-client.ts';
import { NODE_LEASE_NAMESPACE } from './well-known.ts';

const PAGE_SIZE = '500';
const RESTART_DELAY_MS = 1_000;
const MAX_RESTART_DELAY_MS = 30_000;

const ListSchema = z.object({
  metadata: z
    .object({
      resourceVersion: z.string().optional(),
      continue: z.string().optional(),
    })
    .optional(),
  items: z.array(z.unknown()).nullish(),
});

interface Informer {
  resource: Resource;
  lw: ListWatch<KubernetesObject>;
  listed: boolean;
}

interface Resource {
  kind: string;
  path: string;
  /** Cuts and validates one object; undefined when it does not fit. */
  slim(raw: unknown): KubernetesObject | undefined;
  upsert(obj: KubernetesObject): void;
  remove(obj: KubernetesObject): void;
}

/**
 * A Watch whose objects pass through `slim` before ListWatch stores them,
 * so the informer cache holds the same small objects the list function
 * returns (client-node has no transform hook of its own).
 */
class SlimmingWatch extends Watch {
  private readonly slim: (raw: unknown) => KubernetesObject | undefined;

  constructor(kubeConfig: KubeConfig, slim: (raw: unknown) => KubernetesObject | undefined) {
    super(kubeConfig);
    this.slim = slim;
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase, obj: unknown, raw: unknown) => {
        if (phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED') {
          const slim = this.slim(obj);
          if (slim !== undefined) callback(phase, slim, raw);
          return;
        }
        callback(phase, obj, raw);
      },
      done,
    );
  }
}

/*
 * The slim objects are not client-node's typed models (times stay strings),
 * but ListWatch only reads metadata name/namespace/resourceVersion, which
 * both have: these two casts are where one is handed to the other.
 */
function toInformer(obj: { metadata: unknown }): KubernetesObject {
  return obj as unknown as KubernetesObject;
}
function fromInformer<T>(obj: KubernetesObject): T {
  return obj as unknown as T;
}

/**
 * Informers for nodes, node Leases (kube-node-lease) and pods, built on
 * client-node's ListWatch, feeding the ClusterCache. Lists go page by page
 * through the RestClient; a watch that fails for good is restarted with
 * backoff (ListWatch itself gives up after an error).
 */
export class ClusterInformers {
  private readonly informers: Informer[] = [];
  private readonly logger: Logger;
  private readonly client: RestClient;
  private readonly synced = new Set<string>();
  private syncWaiters: (() => void)[] = [];
  private stopped = false;
  private readonly restartTimers = new Set<ReturnType<typeof setTimeout>>();

  constructor(kubeConfig: KubeConfig, client: RestClient, cache: ClusterCache, logger: Logger) {
    this.logger = logger;
    this.client = client;
    const log = logger;
    const slimmer =
      <T extends { metadata: unknown }>(kind: string, schema: z.ZodType<T>) =>
      (raw: unknown): KubernetesObject | undefined => {
        const parsed = schema.safeParse(raw);
        if (!parsed.success) {
          log.warn(
            { kind, issues: parsed.error.issues.slice(0, 3) },
            'ignoring an object that does not parse',
          );
          return undefined;
        }
        return toInformer(parsed.data);
      };
    const resources: Resource[] = [
      {
        kind: 'nodes',
        path: '/api/v1/nodes',
        slim: slimmer('Node', NodeSchema),
        upsert: (o) => cache.upsertNode(fromInformer(o)),
        remove: (o) =>
          cache.removeNode(fromInformer<{ metadata: { name: string } }>(o).metadata.name),
      },
      {
        kind: 'leases',
        path: `/apis/coordination.k8s.io/v1/namespaces/${NODE_LEASE_NAMESPACE}/leases`,
        slim: slimmer('Lease', LeaseSchema),
        upsert: (o) => cache.upsertLease(fromInformer(o)),
        remove: (o) =>
          cache.removeLease(fromInformer<{ metadata: { name: string } }>(o).metadata.name),
      },
      {
        kind: 'pods',
        path: '/api/v1/pods',
        slim: slimmer('Pod', PodSchema),
        upsert: (o) => cache.upsertPod(fromInformer(o)),
        remove: (o) =>
          cache.removePod(
            podKey(fromInformer<{ metadata: { name: string; namespace: string } }>(o)),
          ),
      },
    ];
    for (const resource of resources) {
      const lw = new ListWatch<KubernetesObject>(
        resource.path,
        new SlimmingWatch(kubeConfig, resource.slim),
        () => this.list(resource),
        false,
      );
      lw.on('add', resource.upsert);
      lw.on('update', resource.upsert);
      lw.on('delete', resource.remove);
      const informer: Informer = { resource, lw, listed: false };
      let delay = RESTART_DELAY_MS;
      lw.on('connect', () => {
        if (informer.listed) delay = RESTART_DELAY_MS;
      });
      lw.on('error', (err: unknown) => {
        if (this.stopped) return;
        this.logger.warn(
          { kind: resource.kind, err, retryInMs: delay },
          'informer failed; restarting',
        );
        const t = setTimeout(() => {
          this.restartTimers.delete(t);
          if (!this.stopped) void this.startOne(informer);
        }, delay);
        t.unref();
        this.restartTimers.add(t);
        delay = Math.min(delay * 2, MAX_RESTART_DELAY_MS);
      });
      this.informers.push(informer);
    }
  }

  /** Starts every informer; resolves once each has completed its first list. */
  async start(): Promise<void> {
    this.stopped = false;
    await Promise.all(this.informers.map((i) => this.startOne(i)));
    await this.waitForSync();
  }

  /** ListWatch.start resolves after the list has been applied and the watch opened. */
  private async startOne(informer: Informer): Promise<void> {
    await informer.lw.start();
    if (informer.listed && !this.synced.has(informer.resource.kind)) {
      this.synced.add(informer.resource.kind);
      if (this.hasSynced) {
        const waiters = this.syncWaiters;
        this.syncWaiters = [];
        for (const w of waiters) w();
      }
    }
  }

  get hasSynced(): boolean {
    return this.synced.size === this.informers.length;
  }

  waitForSync(): Promise<void> {
    if (this.hasSynced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    await Promise.all(this.informers.map(({ lw }) => lw.stop()));
  }

  private async list(resource: Resource): Promise<KubernetesListObject<KubernetesObject>> {
    const items: KubernetesObject[] = [];
    let resourceVersion = '';
    let continueToken: string | undefined;
    do {
      const query: Record<string, string> = { limit: PAGE_SIZE };
      if (continueToken !== undefined) query.continue = continueToken;
      const page = ListSchema.parse(await this.client.request('GET', resource.path, { query }));
      for (const raw of page.items ?? []) {
        const slim = resource.slim(raw);
        if (slim !== undefined) items.push(slim);
      }
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken !== undefined);
    this.logger.info({ kind: resource.kind, count: items.length, resourceVersion }, 'listed');
    const informer = this.informers.find((i) => i.resource === resource);
    if (informer !== undefined) informer.listed = true;
    return { metadata: { resourceVersion }, items };
  }
}
