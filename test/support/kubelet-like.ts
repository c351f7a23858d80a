import { call } from './http-call.ts';

/** What kubelet sends; EdgeHub names the client `kubelet` from it and caches its reads. */
const KUBELET_USER_AGENT = 'kubelet/v1.26.0 (linux/amd64) kubernetes/b8609d4';

/** The status of each read one sync made, by what it read. */
export interface SyncReads {
  node: number;
  pods: number;
  /** `configmap/<name>` and `secret/<name>` of each running pod's volumes */
  volumes: Record<string, number>;
}

export interface RunningPod {
  name: string;
  namespace: string;
  configMaps?: readonly string[];
  secrets?: readonly string[];
}

/**
 * What a real kubelet does with the answers EdgeHub gives it, reduced to
 * the decisions that cost pods (seen with kubelet v1.26 on containerd):
 *
 * - its pod LIST (`fieldSelector=spec.nodeName=<node>`) answered 200 is the
 *   truth: every running pod missing from it is killed and its volumes
 *   removed ("SyncLoop ADD source=api pods=[]"); any error keeps what runs;
 * - `GET nodes/<node>` answered 404 makes it give up ("Failed to initialize
 *   CSINode ... nodes <node> not found", a fatal exit); errors are retried;
 * - a ConfigMap or Secret LIST by name answered 200 without the object fails
 *   that pod's volume ("configmap not found"); errors keep the last content.
 */
export class KubeletLike {
  readonly #hubUrl: string;
  readonly #node: string;
  readonly #running = new Map<string, RunningPod>();
  readonly killed: string[] = [];
  readonly lostVolumes: string[] = [];
  gaveUp: string | undefined;

  constructor(hubUrl: string, node: string, running: readonly RunningPod[]) {
    this.#hubUrl = hubUrl;
    this.#node = node;
    for (const p of running) this.#running.set(`${p.namespace}/${p.name}`, p);
  }

  /** The pods it still runs, `namespace/name`, sorted. */
  running(): string[] {
    return [...this.#running.keys()].sort();
  }

  /** One pass of kubelet's start-up reads, acting on each answer as kubelet would. */
  async sync(): Promise<SyncReads> {
    const node = await this.#get(`/api/v1/nodes/${this.#node}?resourceVersion=0&timeout=10s`);
    if (node.status === 404) this.gaveUp = `nodes "${this.#node}" not found`;
    const pods = await this.#get(
      `/api/v1/pods?fieldSelector=${encodeURIComponent(`spec.nodeName=${this.#node}`)}&limit=500&resourceVersion=0`,
    );
    if (pods.status === 200) {
      const listed = new Set(
        (
          pods.json<{ items: Array<{ metadata: { name: string; namespace: string } }> }>().items ??
          []
        ).map((p) => `${p.metadata.namespace}/${p.metadata.name}`),
      );
      for (const key of [...this.#running.keys()]) {
        if (!listed.has(key)) {
          this.#running.delete(key);
          this.killed.push(key);
        }
      }
    }
    const volumes: Record<string, number> = {};
    for (const pod of this.#running.values()) {
      for (const [kind, names] of [
        ['configmap', pod.configMaps ?? []],
        ['secret', pod.secrets ?? []],
      ] as const) {
        for (const name of names) {
          const reply = await this.#get(
            `/api/v1/namespaces/${pod.namespace}/${kind}s?fieldSelector=${encodeURIComponent(`metadata.name=${name}`)}&limit=500&resourceVersion=0`,
          );
          volumes[`${kind}/${name}`] = reply.status;
          if (reply.status === 200 && reply.json<{ items: unknown[] }>().items.length === 0) {
            this.lostVolumes.push(`${pod.namespace}/${pod.name} ${kind}/${name}`);
          }
        }
      }
    }
    return { node: node.status, pods: pods.status, volumes };
  }

  #get(path: string) {
    return call(`${this.#hubUrl}${path}`, {
      headers: {
        'User-Agent': KUBELET_USER_AGENT,
        Accept: 'application/vnd.kubernetes.protobuf,application/json',
      },
    });
  }
}
