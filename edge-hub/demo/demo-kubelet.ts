import {
  CoreV1Api,
  createConfiguration,
  KubeConfig,
  ListWatch,
  ServerConfiguration,
  setHeaderMiddleware,
  Watch,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Pod,
  type V1Secret,
} from '@kubernetes/client-node';
import { z } from 'zod';
import { formatMicroTime } from '../../src/kube/meta-time.ts';

/** What kubelet v1.32 sends; the hub names the client `kubelet` from it and caches its reads. */
export const KUBELET_USER_AGENT = 'kubelet/v1.32.0 (linux/amd64) kubernetes/70d3cc9';

/** One answer from the hub, with the header that says who produced it. */
export interface HubAnswer {
  status: number;
  /** `X-Edgebox-Source`: `upstream` (kube-apiserver answered) or `cache` (the node did). */
  source: string;
  body: unknown;
}

const objectMetaSchema = z.looseObject({
  metadata: z.looseObject({ name: z.string(), resourceVersion: z.string() }),
});
const statusSchema = z.looseObject({ kind: z.literal('Status'), message: z.string() });
const listSchema = z.looseObject({
  metadata: z.looseObject({ resourceVersion: z.string().optional() }),
  items: z.array(objectMetaSchema),
});

/**
 * A client-node KubeConfig for the hub's plain-HTTP listener. Watches take
 * their headers from the authenticators, so one sets the kubelet User-Agent.
 */
function hubKubeConfig(hubUrl: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromClusterAndUser(
    { name: 'edgehub', server: hubUrl, skipTLSVerify: true },
    { name: 'kubelet' },
  );
  kc.addAuthenticator({
    isAuthProvider: () => true,
    applyAuthentication: (_user, opts) => {
      opts.headers = { ...(opts.headers ?? {}), 'User-Agent': KUBELET_USER_AGENT };
      return Promise.resolve();
    },
  });
  return kc;
}

/**
 * The typed API client, as `kc.makeApiClient(CoreV1Api)` builds it but with
 * the kubelet User-Agent: makeApiClient's own User-Agent middleware runs after
 * the authenticators and would name every LIST `kubernetes-client-javascript`,
 * which the hub does not cache for kubelet.
 */
function kubeletCoreApi(kc: KubeConfig, hubUrl: string): CoreV1Api {
  return new CoreV1Api(
    createConfiguration({
      baseServer: new ServerConfiguration(hubUrl, {}),
      authMethods: { default: kc },
      middleware: [setHeaderMiddleware('User-Agent', KUBELET_USER_AGENT)],
    }),
  );
}

function names(objects: readonly KubernetesObject[]): string[] {
  return objects.map((o) => o.metadata?.name ?? '?').sort();
}

/**
 * A kubelet-like client of the hub: client-node informers on the node's pods
 * (`spec.nodeName` field selector, as kubelet lists them) and on the
 * ConfigMaps and Secrets of their namespace, plus the raw requests kubelet
 * makes besides (Lease renewals, Events). Errors that reach an informer are
 * kept: the demo fails if any does.
 */
export class DemoKubelet {
  readonly pods: ListWatch<V1Pod>;
  readonly configMaps: ListWatch<V1ConfigMap>;
  readonly secrets: ListWatch<V1Secret>;
  readonly errors: string[] = [];
  readonly #hubUrl: string;
  readonly #nodeName: string;
  readonly #namespace: string;

  constructor(opts: { hubUrl: string; nodeName: string; namespace: string }) {
    this.#hubUrl = opts.hubUrl;
    this.#nodeName = opts.nodeName;
    this.#namespace = opts.namespace;
    const kc = hubKubeConfig(opts.hubUrl);
    const core = kubeletCoreApi(kc, opts.hubUrl);
    const watch = new Watch(kc);
    const ns = opts.namespace;
    const nodeSelector = `spec.nodeName=${opts.nodeName}`;
    this.pods = new ListWatch<V1Pod>(
      '/api/v1/pods',
      watch,
      () => core.listPodForAllNamespaces({ fieldSelector: nodeSelector }),
      false,
      undefined,
      nodeSelector,
    );
    this.configMaps = new ListWatch<V1ConfigMap>(
      `/api/v1/namespaces/${ns}/configmaps`,
      watch,
      () => core.listNamespacedConfigMap({ namespace: ns }),
      false,
    );
    this.secrets = new ListWatch<V1Secret>(
      `/api/v1/namespaces/${ns}/secrets`,
      watch,
      () => core.listNamespacedSecret({ namespace: ns }),
      false,
    );
    for (const [what, informer] of this.#informers()) {
      informer.on('error', (err: unknown) => {
        this.errors.push(`${what} informer: ${err instanceof Error ? err.message : String(err)}`);
      });
    }
  }

  #informers(): Array<[string, ListWatch<V1Pod> | ListWatch<V1ConfigMap> | ListWatch<V1Secret>]> {
    return [
      ['pods', this.pods],
      ['configmaps', this.configMaps],
      ['secrets', this.secrets],
    ];
  }

  /** Lists each resource, then watches it (start() resolves once the watch is requested). */
  async start(): Promise<void> {
    await Promise.all(this.#informers().map(([, informer]) => informer.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.#informers().map(([, informer]) => informer.stop()));
  }

  podNames(): string[] {
    return names(this.pods.list());
  }

  configMapNames(): string[] {
    return names(this.configMaps.list(this.#namespace));
  }

  secretNames(): string[] {
    return names(this.secrets.list(this.#namespace));
  }

  configMapData(name: string): Record<string, string> {
    return this.configMaps.get(name, this.#namespace)?.data ?? {};
  }

  /** "pods web-0, web-1; configmaps db-config, web-config; secrets db-credentials" */
  describe(): string {
    return [
      `pods ${this.podNames().join(', ')}`,
      `configmaps ${this.configMapNames().join(', ')}`,
      `secrets ${this.secretNames().join(', ')}`,
    ].join('; ');
  }

  async request(method: string, path: string, body?: unknown): Promise<HubAnswer> {
    const res = await fetch(`${this.#hubUrl}${path}`, {
      method,
      headers: {
        'User-Agent': KUBELET_USER_AGENT,
        Accept: 'application/json',
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON (a proxy error page, say): keep the text for the failure message.
    }
    return {
      status: res.status,
      source: res.headers.get('x-edgebox-source') ?? 'none',
      body: parsed,
    };
  }

  /** GET of one object; its name and resourceVersion, or an Error saying what came back. */
  async get(path: string): Promise<{ answer: HubAnswer; resourceVersion: string } | Error> {
    const answer = await this.request('GET', path);
    const obj = objectMetaSchema.safeParse(answer.body);
    if (answer.status !== 200 || !obj.success) {
      return new Error(
        `GET ${path} answered ${answer.status} (${answer.source}): ${summarize(answer.body)}`,
      );
    }
    return { answer, resourceVersion: obj.data.metadata.resourceVersion };
  }

  /** LIST; the item names, or an Error saying what came back. */
  async list(path: string): Promise<{ answer: HubAnswer; names: string[] } | Error> {
    const answer = await this.request('GET', path);
    const list = listSchema.safeParse(answer.body);
    if (answer.status !== 200 || !list.success) {
      return new Error(
        `LIST ${path} answered ${answer.status} (${answer.source}): ${summarize(answer.body)}`,
      );
    }
    return { answer, names: list.data.items.map((i) => i.metadata.name).sort() };
  }

  /**
   * A heartbeat as kubelet sends it: read its node Lease, write it back with a
   * new renewTime. Resolves with the PUT's answer and the resourceVersion it
   * carried.
   */
  async renewLease(): Promise<{ answer: HubAnswer; resourceVersion: string } | Error> {
    const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${this.#nodeName}`;
    const current = await this.request('GET', path);
    if (current.status !== 200 || typeof current.body !== 'object' || current.body === null) {
      return new Error(
        `GET of the node Lease answered ${current.status}: ${summarize(current.body)}`,
      );
    }
    const lease = current.body as { spec?: Record<string, unknown> };
    const renewed = {
      ...lease,
      spec: { ...lease.spec, renewTime: formatMicroTime(Date.now() * 1000) },
    };
    const answer = await this.request('PUT', path, renewed);
    const obj = objectMetaSchema.safeParse(answer.body);
    if (answer.status !== 200 || !obj.success) {
      return new Error(
        `PUT of the node Lease answered ${answer.status} (${answer.source}): ${summarize(answer.body)}`,
      );
    }
    return { answer, resourceVersion: obj.data.metadata.resourceVersion };
  }

  /** kubelet reports what it does as Events; offline there is no one to take them. */
  postEvent(reason: string, message: string): Promise<HubAnswer> {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    return this.request('POST', `/api/v1/namespaces/${this.#namespace}/events`, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${this.#nodeName}.`, namespace: this.#namespace },
      involvedObject: { kind: 'Node', name: this.#nodeName, apiVersion: 'v1' },
      reason,
      message,
      type: 'Normal',
      source: { component: 'kubelet', host: this.#nodeName },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
  }
}

/** A Status' message, or the start of whatever else came back, for one-line failures. */
export function summarize(body: unknown): string {
  const status = statusSchema.safeParse(body);
  if (status.success) return status.data.message;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return text.length > 160 ? `${text.slice(0, 160)}...` : text;
}
