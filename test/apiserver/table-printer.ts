import { isJsonObject, type JsonObject, type KubeObject } from './object-meta.ts';
import type { ResourceType } from './resource-types.ts';

/**
 * Server-side printing: kubectl asks for `as=Table` and prints the rows the
 * server computed. Pods, nodes and namespaces get the columns kube-apiserver
 * prints for them; every other resource gets Name and Age.
 */

export interface TableColumn {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

interface Printer {
  columns: TableColumn[];
  cells(obj: KubeObject, now: number): unknown[];
}

const column = (name: string, type = 'string', format = '', priority = 0): TableColumn => ({
  name,
  type,
  format,
  description: `${name} column`,
  priority,
});

const NAME = column('Name', 'string', 'name');
const AGE = column('Age');

function obj(value: unknown): JsonObject {
  return isJsonObject(value) ? value : {};
}

function list(value: unknown): JsonObject[] {
  return Array.isArray(value) ? value.filter(isJsonObject) : [];
}

function age(o: KubeObject, now: number): string {
  const created = o.metadata.creationTimestamp;
  if (created === undefined) return '<unknown>';
  return humanDuration(now - Date.parse(created));
}

/** apimachinery's duration.HumanDuration: what kubectl shows in AGE. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.trunc(hours / 24) % 365;
    const y = Math.trunc(hours / 24 / 365);
    return dy === 0 ? `${y}y` : `${y}y${dy}d`;
  }
  return `${Math.trunc(hours / 24 / 365)}y`;
}

const podPrinter: Printer = {
  columns: [
    NAME,
    column('Ready'),
    column('Status'),
    column('Restarts'),
    AGE,
    column('IP', 'string', '', 1),
    column('Node', 'string', '', 1),
  ],
  cells(pod, now) {
    const spec = obj(pod.spec);
    const status = obj(pod.status);
    const statuses = list(status.containerStatuses);
    const total = list(spec.containers).length;
    const ready = statuses.filter((s) => s.ready === true).length;
    const restarts = statuses.reduce(
      (n, s) => n + (typeof s.restartCount === 'number' ? s.restartCount : 0),
      0,
    );
    let reason =
      typeof status.reason === 'string' ? status.reason : String(status.phase ?? 'Pending');
    for (const s of statuses) {
      const waiting = obj(obj(s.state).waiting);
      if (typeof waiting.reason === 'string' && waiting.reason !== '') reason = waiting.reason;
    }
    if (pod.metadata.deletionTimestamp !== undefined) reason = 'Terminating';
    return [
      pod.metadata.name,
      `${ready}/${total}`,
      reason,
      String(restarts),
      age(pod, now),
      typeof status.podIP === 'string' ? status.podIP : '<none>',
      typeof spec.nodeName === 'string' ? spec.nodeName : '<none>',
    ];
  },
};

const nodePrinter: Printer = {
  columns: [NAME, column('Status'), column('Roles'), AGE, column('Version')],
  cells(node, now) {
    const ready = list(obj(node.status).conditions).find((c) => c.type === 'Ready');
    const states: string[] = [
      ready === undefined
        ? 'Unknown'
        : ready.status === 'True'
          ? 'Ready'
          : ready.status === 'False'
            ? 'NotReady'
            : 'Unknown',
    ];
    if (obj(node.spec).unschedulable === true) states.push('SchedulingDisabled');
    const roles = Object.keys(node.metadata.labels ?? {})
      .filter((k) => k.startsWith('node-role.kubernetes.io/'))
      .map((k) => k.slice('node-role.kubernetes.io/'.length))
      .filter((r) => r !== '')
      .sort();
    const version = obj(obj(node.status).nodeInfo).kubeletVersion;
    return [
      node.metadata.name,
      states.join(','),
      roles.length === 0 ? '<none>' : roles.join(','),
      age(node, now),
      typeof version === 'string' ? version : '',
    ];
  },
};

const namespacePrinter: Printer = {
  columns: [NAME, column('Status'), AGE],
  cells(ns, now) {
    return [ns.metadata.name, String(obj(ns.status).phase ?? ''), age(ns, now)];
  },
};

const genericPrinter: Printer = {
  columns: [NAME, AGE],
  cells(o, now) {
    return [o.metadata.name, age(o, now)];
  },
};

const PRINTERS: Record<string, Printer> = {
  '/Pod': podPrinter,
  '/Node': nodePrinter,
  '/Namespace': namespacePrinter,
};

function printerFor(type: ResourceType): Printer {
  return PRINTERS[`${type.group}/${type.kind}`] ?? genericPrinter;
}

export interface TableOptions {
  includeObject: IncludeObject;
  /** Watch events after the first carry no column definitions, as the apiserver sends them. */
  withColumns: boolean;
  resourceVersion?: string;
  continueToken?: string;
  remainingItemCount?: number;
  now: number;
}

export function buildTable(
  type: ResourceType,
  objects: KubeObject[],
  options: TableOptions,
): JsonObject {
  const printer = printerFor(type);
  const metadata: JsonObject = {};
  if (options.resourceVersion !== undefined) metadata.resourceVersion = options.resourceVersion;
  if (options.continueToken !== undefined) metadata.continue = options.continueToken;
  if (options.remainingItemCount !== undefined)
    metadata.remainingItemCount = options.remainingItemCount;
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata,
    columnDefinitions: options.withColumns ? printer.columns : null,
    rows: objects.map((o) => {
      const row: JsonObject = { cells: printer.cells(o, options.now) };
      if (options.includeObject === 'Object') row.object = o;
      else if (options.includeObject === 'Metadata') {
        row.object = {
          kind: 'PartialObjectMetadata',
          apiVersion: 'meta.k8s.io/v1',
          metadata: o.metadata,
        };
      }
      return row;
    }),
  };
}
