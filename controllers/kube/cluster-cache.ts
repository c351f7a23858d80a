import type { Lease, Node, Pod } from './objects.ts';
import { podKey, resourceVersionAtLeast } from './objects.ts';

export type CachedKind = 'node' | 'pod' | 'lease';

/** Told about every change, after the cache holds it. `old`/`next` undefined = added/deleted. */
export interface CacheListener {
  nodeChanged?(old: Node | undefined, next: Node | undefined): void;
  podChanged?(old: Pod | undefined, next: Pod | undefined): void;
  leaseChanged?(old: Lease | undefined, next: Lease | undefined): void;
}

interface VersionWaiter {
  /** Resolve once the object has at least this version; undefined = once it is gone. */
  rv: string | undefined;
  resolve: () => void;
}

/**
 * The ECM's view of the cluster: nodes, node Leases and pods, with pods
 * indexed by the node they are bound to (upstream's spec.nodeName index).
 * Informers write into it; controllers only read it.
 */
export class ClusterCache {
  private readonly nodeMap = new Map<string, Node>();
  private readonly podMap = new Map<string, Pod>();
  private readonly podsByNode = new Map<string, Map<string, Pod>>();
  private readonly leaseMap = new Map<string, Lease>();
  private readonly listeners: CacheListener[] = [];
  private readonly waiters = new Map<string, VersionWaiter[]>();

  addListener(listener: CacheListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i !== -1) this.listeners.splice(i, 1);
    };
  }

  node(name: string): Node | undefined {
    return this.nodeMap.get(name);
  }

  nodes(): Node[] {
    return [...this.nodeMap.values()];
  }

  get nodeCount(): number {
    return this.nodeMap.size;
  }

  pod(key: string): Pod | undefined {
    return this.podMap.get(key);
  }

  pods(): IterableIterator<Pod> {
    return this.podMap.values();
  }

  get podCount(): number {
    return this.podMap.size;
  }

  /** Pods bound to a node (spec.nodeName), in no particular order. */
  podsOnNode(nodeName: string): Pod[] {
    const byName = this.podsByNode.get(nodeName);
    return byName === undefined ? [] : [...byName.values()];
  }

  lease(nodeName: string): Lease | undefined {
    return this.leaseMap.get(nodeName);
  }

  upsertNode(node: Node): void {
    const old = this.nodeMap.get(node.metadata.name);
    this.nodeMap.set(node.metadata.name, node);
    this.settle('node', node.metadata.name, node.metadata.resourceVersion);
    for (const l of this.listeners) l.nodeChanged?.(old, node);
  }

  removeNode(name: string): void {
    const old = this.nodeMap.get(name);
    this.nodeMap.delete(name);
    this.settle('node', name, undefined);
    if (old !== undefined) for (const l of this.listeners) l.nodeChanged?.(old, undefined);
  }

  upsertPod(pod: Pod): void {
    const key = podKey(pod);
    const old = this.podMap.get(key);
    this.podMap.set(key, pod);
    const oldNode = old?.spec.nodeName;
    const newNode = pod.spec.nodeName;
    if (oldNode !== undefined && oldNode !== newNode) this.unindex(oldNode, key);
    if (newNode !== undefined && newNode !== '') {
      let byName = this.podsByNode.get(newNode);
      if (byName === undefined) {
        byName = new Map();
        this.podsByNode.set(newNode, byName);
      }
      byName.set(key, pod);
    }
    this.settle('pod', key, pod.metadata.resourceVersion);
    for (const l of this.listeners) l.podChanged?.(old, pod);
  }

  removePod(key: string): void {
    const old = this.podMap.get(key);
    this.podMap.delete(key);
    if (old?.spec.nodeName !== undefined) this.unindex(old.spec.nodeName, key);
    this.settle('pod', key, undefined);
    if (old !== undefined) for (const l of this.listeners) l.podChanged?.(old, undefined);
  }

  upsertLease(lease: Lease): void {
    const old = this.leaseMap.get(lease.metadata.name);
    this.leaseMap.set(lease.metadata.name, lease);
    this.settle('lease', lease.metadata.name, lease.metadata.resourceVersion);
    for (const l of this.listeners) l.leaseChanged?.(old, lease);
  }

  removeLease(name: string): void {
    const old = this.leaseMap.get(name);
    this.leaseMap.delete(name);
    this.settle('lease', name, undefined);
    if (old !== undefined) for (const l of this.listeners) l.leaseChanged?.(old, undefined);
  }

  /**
   * Resolves once the cache holds the object at `resourceVersion` or later
   * (or, with undefined, once the object is gone): how a writer waits for its
   * own write to come back through the watch.
   */
  waitFor(kind: CachedKind, key: string, resourceVersion: string | undefined): Promise<void> {
    if (this.satisfied(kind, key, resourceVersion)) return Promise.resolve();
    return new Promise((resolve) => {
      const k = `${kind}:${key}`;
      const list = this.waiters.get(k) ?? [];
      list.push({ rv: resourceVersion, resolve });
      this.waiters.set(k, list);
    });
  }

  /** Number of writes still waiting to be seen. */
  get pendingWaits(): number {
    let n = 0;
    for (const list of this.waiters.values()) n += list.length;
    return n;
  }

  private satisfied(kind: CachedKind, key: string, rv: string | undefined): boolean {
    const obj =
      kind === 'node'
        ? this.nodeMap.get(key)
        : kind === 'pod'
          ? this.podMap.get(key)
          : this.leaseMap.get(key);
    if (rv === undefined) return obj === undefined;
    return obj !== undefined && resourceVersionAtLeast(obj.metadata.resourceVersion, rv);
  }

  private settle(kind: CachedKind, key: string, rv: string | undefined): void {
    const k = `${kind}:${key}`;
    const list = this.waiters.get(k);
    if (list === undefined) return;
    const remaining = list.filter((w) => {
      // A deletion settles every wait: no newer version of it is coming.
      const done = rv === undefined || (w.rv !== undefined && resourceVersionAtLeast(rv, w.rv));
      if (done) w.resolve();
      return !done;
    });
    if (remaining.length === 0) this.waiters.delete(k);
    else this.waiters.set(k, remaining);
  }

  private unindex(nodeName: string, key: string): void {
    const byName = this.podsByNode.get(nodeName);
    if (byName === undefined) return;
    byName.delete(key);
    if (byName.size === 0) this.podsByNode.delete(nodeName);
  }
}
