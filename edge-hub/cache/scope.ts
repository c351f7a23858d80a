import {
  SelectorError,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  type FieldSelector,
  type LabelSelector,
} from '../../src/kube/selectors.ts';
import type { HubRequest } from '../hub-request.ts';
import { resourceRefOf, type ResourceRef } from './keys.ts';

/**
 * A scope is one distinct LIST/WATCH a component makes of a resource: its
 * namespace ('' = all) and its label and field selectors. The cache answers a
 * list exactly only when that very scope (or an unfiltered one around it) was
 * listed online.
 */
export interface ScopeDef {
  readonly namespace: string;
  readonly labelSelector: string;
  readonly fieldSelector: string;
}

export interface CompiledScope {
  readonly def: ScopeDef;
  /** Canonical identity: requirement order and spelling do not matter. */
  readonly id: string;
  readonly labels: LabelSelector;
  readonly fields: FieldSelector;
  /** True when the scope has neither label nor field requirements. */
  readonly unfiltered: boolean;
  /** Each label (`l:`) and field (`f:`) requirement in canonical spelling: what containment compares. */
  readonly requirements: ReadonlySet<string>;
}

function labelRequirementText(r: LabelSelector['requirements'][number]): string {
  switch (r.operator) {
    case '=':
    case '==':
      return `${r.key}=${r.values[0] ?? ''}`;
    case '!=':
      return `${r.key}!=${r.values[0] ?? ''}`;
    case 'in':
    case 'notin':
      return `${r.key} ${r.operator} (${[...r.values].sort().join(',')})`;
    case 'exists':
      return r.key;
    case '!':
      return `!${r.key}`;
    case 'gt':
      return `${r.key}>${r.values[0] ?? ''}`;
    case 'lt':
      return `${r.key}<${r.values[0] ?? ''}`;
  }
}

function fieldRequirementText(r: FieldSelector['requirements'][number]): string {
  const op = r.operator === '!=' ? '!=' : '=';
  return `${r.field}${op}${JSON.stringify(r.value)}`;
}

export function compileScope(
  ref: ResourceRef,
  namespace: string,
  labelText: string,
  fieldText: string,
): CompiledScope | SelectorError {
  const labels = parseLabelSelector(labelText);
  if (labels instanceof SelectorError) return labels;
  const fields = parseFieldSelector(fieldText, ref.group, ref.resource);
  if (fields instanceof SelectorError) return fields;
  const labelTexts = labels.requirements.map(labelRequirementText).sort();
  const fieldTexts = fields.requirements.map(fieldRequirementText).sort();
  return {
    def: { namespace, labelSelector: labelText, fieldSelector: fieldText },
    id: `${namespace}|${labelTexts.join(',')}|${fieldTexts.join(',')}`,
    labels,
    fields,
    unfiltered: labels.requirements.length === 0 && fields.requirements.length === 0,
    requirements: new Set([...labelTexts.map((t) => `l:${t}`), ...fieldTexts.map((t) => `f:${t}`)]),
  };
}

/** Does an object (by its namespace, labels and selectable fields) fall in the scope? */
export function scopeMatches(
  scope: CompiledScope,
  namespace: string,
  labels: Record<string, string> | undefined,
  fields: Record<string, string>,
): boolean {
  if (scope.def.namespace !== '' && scope.def.namespace !== namespace) return false;
  if (scope.labels.requirements.length > 0 && !matchesLabels(scope.labels, labels)) return false;
  if (scope.fields.requirements.length > 0 && !matchesFields(scope.fields, fields)) return false;
  return true;
}

/**
 * True when every object of `inner` necessarily falls in `outer`: `outer`
 * spans `inner`'s namespace and each of its requirements is also one of
 * `inner`'s (selectors are conjunctions, so `inner` only narrows it). A
 * complete list of `outer`, filtered by `inner`, is then an exact list of
 * `inner`.
 */
export function scopeContains(outer: CompiledScope, inner: CompiledScope): boolean {
  if (outer.id === inner.id) return true;
  if (outer.def.namespace !== '' && outer.def.namespace !== inner.def.namespace) return false;
  for (const r of outer.requirements) if (!inner.requirements.has(r)) return false;
  return true;
}

/**
 * True when a complete list of `scope` would hold the object named
 * `namespace`/`name` if it existed, whatever its labels and fields: the scope
 * spans the namespace, selects no labels, and selects fields only by the
 * object's name and namespace, which it satisfies. Its absence from such a
 * list proves the object does not exist (kubelet lists each ConfigMap and
 * Secret by `metadata.name`, and its Node so).
 */
export function scopeWouldHold(scope: CompiledScope, namespace: string, name: string): boolean {
  if (scope.def.namespace !== '' && scope.def.namespace !== namespace) return false;
  if (scope.labels.requirements.length > 0) return false;
  const identity: Record<string, string> = {
    'metadata.name': name,
    'metadata.namespace': namespace,
  };
  for (const r of scope.fields.requirements) {
    if (!(r.field in identity)) return false;
  }
  return matchesFields(scope.fields, identity);
}

/** The scope (namespace + selectors) of a list or watch request. */
export function requestScope(req: HubRequest): CompiledScope | SelectorError {
  return compileScope(
    resourceRefOf(req.info),
    req.info.namespace,
    req.query.get('labelSelector') ?? '',
    req.query.get('fieldSelector') ?? '',
  );
}
