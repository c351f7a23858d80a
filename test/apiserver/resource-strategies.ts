import {
  isJsonObject,
  validateName,
  type FieldError,
  type JsonObject,
  type KubeObject,
} from './object-meta.ts';
import type { ResourceType } from './resource-types.ts';

/**
 * What the apiserver does per kind beyond generic REST: defaulting,
 * PrepareForCreate/PrepareForUpdate of the kind's registry strategy, the
 * admission plugins that are on by default and change objects
 * (DefaultTolerationSeconds), and the few validations clients trip over.
 * Kinds without an entry get generic behaviour.
 */
export interface StrategyContext {
  allocateClusterIP(): string;
}

export interface ResourceStrategy {
  prepareForCreate?(obj: KubeObject, ctx: StrategyContext): void;
  prepareForUpdate?(next: KubeObject, previous: KubeObject): void;
  validate?(obj: KubeObject): FieldError[];
}

/** DefaultTolerationSeconds admission: how long pods stay on a not-ready/unreachable node. */
export const DEFAULT_TOLERATION_SECONDS = 300;

function asObject(value: unknown): JsonObject {
  return isJsonObject(value) ? value : {};
}

function ensureObject(parent: JsonObject, key: string): JsonObject {
  const current = parent[key];
  if (isJsonObject(current)) return current;
  const created: JsonObject = {};
  parent[key] = created;
  return created;
}

function setDefault(target: JsonObject, key: string, value: unknown): void {
  if (target[key] === undefined || target[key] === null) target[key] = value;
}

function containersOf(spec: JsonObject, field: string): JsonObject[] {
  const list = spec[field];
  return Array.isArray(list) ? list.filter(isJsonObject) : [];
}

function defaultContainer(container: JsonObject): void {
  const image = typeof container.image === 'string' ? container.image : '';
  const lastSegment = image.slice(image.lastIndexOf('/') + 1);
  const tagged = lastSegment.includes(':') || image.includes('@');
  const latest = !tagged || lastSegment.endsWith(':latest');
  setDefault(container, 'imagePullPolicy', latest ? 'Always' : 'IfNotPresent');
  setDefault(container, 'terminationMessagePath', '/dev/termination-log');
  setDefault(container, 'terminationMessagePolicy', 'File');
  setDefault(container, 'resources', {});
  const ports = container.ports;
  if (Array.isArray(ports))
    for (const p of ports) if (isJsonObject(p)) setDefault(p, 'protocol', 'TCP');
}

const QOS_RESOURCES = ['cpu', 'memory'] as const;

/** The pod's QoS class, as pkg/apis/core/helper/qos computes it (cpu and memory only). */
export function podQosClass(spec: JsonObject): 'Guaranteed' | 'Burstable' | 'BestEffort' {
  const containers = [...containersOf(spec, 'initContainers'), ...containersOf(spec, 'containers')];
  let anySet = false;
  let guaranteed = containers.length > 0;
  for (const c of containers) {
    const resources = asObject(c.resources);
    const requests = asObject(resources.requests);
    const limits = asObject(resources.limits);
    for (const r of QOS_RESOURCES) {
      if (requests[r] !== undefined || limits[r] !== undefined) anySet = true;
      const limit = limits[r];
      const request = requests[r] ?? limit;
      if (limit === undefined || String(request) !== String(limit)) guaranteed = false;
    }
  }
  if (!anySet) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

function hasToleration(tolerations: JsonObject[], key: string): boolean {
  return tolerations.some(
    (t) =>
      (t.key === key || (t.key === undefined && t.operator === 'Exists')) &&
      (t.effect === 'NoExecute' || t.effect === undefined || t.effect === ''),
  );
}

const podStrategy: ResourceStrategy = {
  prepareForCreate(pod) {
    const spec = ensureObject(pod, 'spec');
    setDefault(spec, 'restartPolicy', 'Always');
    setDefault(spec, 'dnsPolicy', 'ClusterFirst');
    setDefault(spec, 'schedulerName', 'default-scheduler');
    setDefault(spec, 'terminationGracePeriodSeconds', 30);
    setDefault(spec, 'securityContext', {});
    setDefault(spec, 'enableServiceLinks', true);
    setDefault(spec, 'priority', 0);
    setDefault(spec, 'preemptionPolicy', 'PreemptLowerPriority');
    setDefault(spec, 'serviceAccountName', 'default');
    spec.serviceAccount = spec.serviceAccountName;
    for (const c of containersOf(spec, 'initContainers')) defaultContainer(c);
    for (const c of containersOf(spec, 'containers')) defaultContainer(c);
    const tolerations = Array.isArray(spec.tolerations)
      ? spec.tolerations.filter(isJsonObject)
      : [];
    for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']) {
      if (!hasToleration(tolerations, key)) {
        tolerations.push({
          key,
          operator: 'Exists',
          effect: 'NoExecute',
          tolerationSeconds: DEFAULT_TOLERATION_SECONDS,
        });
      }
    }
    spec.tolerations = tolerations;
    pod.status = { phase: 'Pending', qosClass: podQosClass(spec) };
  },
  validate(pod) {
    const errors: FieldError[] = [];
    const spec = asObject(pod.spec);
    const containers = containersOf(spec, 'containers');
    if (containers.length === 0) {
      errors.push({
        field: 'spec.containers',
        reason: 'FieldValueRequired',
        message: 'Required value',
      });
    }
    const seen = new Set<string>();
    for (const [field, list] of [
      ['spec.initContainers', containersOf(spec, 'initContainers')],
      ['spec.containers', containers],
    ] as const) {
      list.forEach((c, i) => {
        const name = typeof c.name === 'string' ? c.name : '';
        if (name === '') {
          errors.push({
            field: `${field}[${i}].name`,
            reason: 'FieldValueRequired',
            message: 'Required value',
          });
        } else {
          errors.push(...validateName('label', name, `${field}[${i}].name`));
          if (seen.has(name)) {
            errors.push({
              field: `${field}[${i}].name`,
              reason: 'FieldValueDuplicate',
              message: `Duplicate value: ${JSON.stringify(name)}`,
            });
          }
          seen.add(name);
        }
        if (typeof c.image !== 'string' || c.image === '') {
          errors.push({
            field: `${field}[${i}].image`,
            reason: 'FieldValueRequired',
            message: 'Required value',
          });
        }
      });
    }
    return errors;
  },
};

const namespaceStrategy: ResourceStrategy = {
  prepareForCreate(ns) {
    const spec = ensureObject(ns, 'spec');
    spec.finalizers = ['kubernetes'];
    ns.status = { phase: 'Active' };
    const name = ns.metadata.name ?? '';
    ns.metadata.labels = { ...ns.metadata.labels, 'kubernetes.io/metadata.name': name };
  },
  prepareForUpdate(next) {
    const name = next.metadata.name ?? '';
    next.metadata.labels = { ...next.metadata.labels, 'kubernetes.io/metadata.name': name };
  },
};

function secretStringData(secret: KubeObject): void {
  const stringData = secret.stringData;
  if (isJsonObject(stringData)) {
    const data = ensureObject(secret, 'data');
    for (const [k, v] of Object.entries(stringData)) {
      data[k] = Buffer.from(String(v), 'utf8').toString('base64');
    }
  }
  delete secret.stringData;
}

const secretStrategy: ResourceStrategy = {
  prepareForCreate(secret) {
    setDefault(secret, 'type', 'Opaque');
    secretStringData(secret);
  },
  prepareForUpdate(next) {
    secretStringData(next);
  },
};

const serviceStrategy: ResourceStrategy = {
  prepareForCreate(svc, ctx) {
    const spec = ensureObject(svc, 'spec');
    setDefault(spec, 'type', 'ClusterIP');
    setDefault(spec, 'sessionAffinity', 'None');
    if (spec.type !== 'ExternalName') {
      setDefault(spec, 'clusterIP', ctx.allocateClusterIP());
      spec.clusterIPs = [spec.clusterIP];
      setDefault(spec, 'ipFamilies', ['IPv4']);
      setDefault(spec, 'ipFamilyPolicy', 'SingleStack');
      setDefault(spec, 'internalTrafficPolicy', 'Cluster');
    }
    const ports = Array.isArray(spec.ports) ? spec.ports : [];
    for (const p of ports) {
      if (!isJsonObject(p)) continue;
      setDefault(p, 'protocol', 'TCP');
      setDefault(p, 'targetPort', p.port);
    }
    svc.status = { loadBalancer: {} };
  },
  prepareForUpdate(next, previous) {
    // clusterIP is immutable and allocated once; clients that omit it keep it.
    const spec = ensureObject(next, 'spec');
    const prevSpec = asObject(previous.spec);
    setDefault(spec, 'clusterIP', prevSpec.clusterIP);
    setDefault(spec, 'clusterIPs', prevSpec.clusterIPs);
  },
};

const STRATEGIES: Record<string, ResourceStrategy> = {
  '/Pod': podStrategy,
  '/Namespace': namespaceStrategy,
  '/Secret': secretStrategy,
  '/Service': serviceStrategy,
};

export function strategyFor(type: ResourceType): ResourceStrategy {
  return STRATEGIES[`${type.group}/${type.kind}`] ?? {};
}
