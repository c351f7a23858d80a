import { z } from 'zod';
import { parseFieldTerms } from './field-selector-syntax.ts';
import { compareGoStrings, goParseInt64, goQuote } from './go-text.ts';
import { byLabelKey, labelRequirement, parseLabelRequirements } from './label-selector-parser.ts';
import { fieldLabelPolicy } from './selectable-fields.ts';

/**
 * Label and field selectors with kube-apiserver's grammar, validation,
 * matching and error messages (k8s.io/apimachinery/pkg/labels and
 * pkg/fields, plus the per-resource field label conversions).
 */

/** A selector the apiserver would refuse; `message` is the apiserver's own. */
export class SelectorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SelectorError';
  }
}

/**
 * selection.Operator values. 'gt'/'lt' (`a>1`, `a<1`) are accepted by the
 * apiserver's label selector parser too.
 */
export type LabelOperator = '=' | '==' | '!=' | 'in' | 'notin' | 'exists' | '!' | 'gt' | 'lt';

export interface LabelRequirement {
  key: string;
  operator: LabelOperator;
  /** Sorted and de-duplicated when parsed from text, as apimachinery does. */
  values: string[];
}

export interface LabelSelector {
  /** Sorted by key; all must match (comma means AND). */
  readonly requirements: readonly LabelRequirement[];
  /** The selector as the client wrote it; for labelSelectorFromObject, the apiserver's canonical form. */
  readonly text: string;
  /** labels.Nothing(): what a nil `selector` object means in a spec. */
  readonly matchesNothing?: boolean;
}

export type FieldOperator = '=' | '==' | '!=';

export interface FieldRequirement {
  /** The field the apiserver selects on, after its label conversion (spec.host -> spec.nodeName). */
  field: string;
  operator: FieldOperator;
  value: string;
}

export interface FieldSelector {
  /** In the apiserver's order (terms sorted as written); all must match. */
  readonly requirements: readonly FieldRequirement[];
  /** The selector as the client wrote it. */
  readonly text: string;
}

// ---------------------------------------------------------------------------
// Label selectors.

/** labels.Parse. The empty string selects everything. */
export function parseLabelSelector(text: string): LabelSelector | SelectorError {
  // No selector, the usual case: every LIST the hub records compiles its scope.
  if (text === '') return { requirements: [], text };
  const parsed = parseLabelRequirements(text);
  return parsed.ok ? { requirements: parsed.value, text } : new SelectorError(parsed.message);
}

function lookupLabel(labels: Record<string, string> | undefined, key: string): string | undefined {
  // Own properties only: "constructor" is a valid label key.
  return labels !== undefined && Object.hasOwn(labels, key) ? labels[key] : undefined;
}

function requirementMatches(
  req: LabelRequirement,
  labels: Record<string, string> | undefined,
): boolean {
  const value = lookupLabel(labels, req.key);
  switch (req.operator) {
    case 'in':
    case '=':
    case '==':
      return value !== undefined && req.values.includes(value);
    case 'notin':
    case '!=':
      return value === undefined || !req.values.includes(value);
    case 'exists':
      return value !== undefined;
    case '!':
      return value === undefined;
    case 'gt':
    case 'lt': {
      if (value === undefined || req.values.length !== 1) return false;
      const actual = goParseInt64(value);
      const bound = goParseInt64(req.values[0] ?? '');
      if (actual === undefined || bound === undefined) return false;
      return req.operator === 'gt' ? actual > bound : actual < bound;
    }
  }
}

export function matchesLabels(
  sel: LabelSelector,
  labels: Record<string, string> | undefined,
): boolean {
  if (sel.matchesNothing === true) return false;
  for (const req of sel.requirements) {
    if (!requirementMatches(req, labels)) return false;
  }
  return true;
}

/** Requirement.String(): the apiserver's canonical text for one requirement. */
function formatRequirement(req: LabelRequirement): string {
  const values =
    req.values.length === 1
      ? (req.values[0] ?? '')
      : [...req.values].sort(compareGoStrings).join(',');
  switch (req.operator) {
    case 'exists':
      return req.key;
    case '!':
      return `!${req.key}`;
    case 'in':
    case 'notin':
      return `${req.key} ${req.operator} (${values})`;
    case 'gt':
      return `${req.key}>${values}`;
    case 'lt':
      return `${req.key}<${values}`;
    default:
      return `${req.key}${req.operator}${values}`;
  }
}

/** Selector.String(): requirements in key order, comma-separated. */
export function formatLabelSelector(sel: Pick<LabelSelector, 'requirements'>): string {
  return sel.requirements.map(formatRequirement).join(',');
}

const labelSelectorObjectSchema = z.object({
  matchLabels: z.record(z.string(), z.string()).nullish(),
  matchExpressions: z
    .array(
      z.object({
        key: z.string(),
        operator: z.string(),
        values: z.array(z.string()).nullish(),
      }),
    )
    .nullish(),
});

const EXPRESSION_OPERATORS: ReadonlyMap<string, LabelOperator> = new Map<string, LabelOperator>([
  ['In', 'in'],
  ['NotIn', 'notin'],
  ['Exists', 'exists'],
  ['DoesNotExist', '!'],
]);

/**
 * metav1.LabelSelectorAsSelector: a spec's `selector` object. A null or
 * absent selector selects nothing; an empty one selects everything.
 */
export function labelSelectorFromObject(
  obj:
    | {
        matchLabels?: Record<string, string>;
        matchExpressions?: { key: string; operator: string; values?: string[] }[];
      }
    | null
    | undefined,
): LabelSelector | SelectorError {
  if (obj === null || obj === undefined)
    return { requirements: [], text: '', matchesNothing: true };
  const parsed = labelSelectorObjectSchema.safeParse(obj);
  if (!parsed.success) {
    return new SelectorError(`invalid label selector object: ${z.prettifyError(parsed.error)}`);
  }
  const requirements: LabelRequirement[] = [];
  const matchLabels = parsed.data.matchLabels ?? {};
  for (const key of Object.keys(matchLabels).sort(compareGoStrings)) {
    const made = labelRequirement(key, '=', [matchLabels[key] ?? '']);
    if (!made.ok) return new SelectorError(made.message);
    requirements.push(made.value);
  }
  for (const expr of parsed.data.matchExpressions ?? []) {
    const operator = EXPRESSION_OPERATORS.get(expr.operator);
    if (operator === undefined) {
      return new SelectorError(`${goQuote(expr.operator)} is not a valid label selector operator`);
    }
    // An empty values list is a nil slice in Go, which its messages print differently.
    const values =
      expr.values === null || expr.values === undefined || expr.values.length === 0
        ? undefined
        : expr.values;
    const made = labelRequirement(expr.key, operator, values);
    if (!made.ok) return new SelectorError(made.message);
    requirements.push(made.value);
  }
  requirements.sort(byLabelKey);
  return { requirements, text: formatLabelSelector({ requirements }) };
}

// ---------------------------------------------------------------------------
// Field selectors.

/**
 * fields.ParseSelector: the syntax alone, without a resource's field label
 * conversion (what RequestInfo and client-side code use).
 */
export function parseFieldSelectorSyntax(text: string): FieldSelector | SelectorError {
  if (text === '') return { requirements: [], text };
  const parsed = parseFieldTerms(text);
  return parsed.ok
    ? { requirements: parsed.requirements, text }
    : new SelectorError(parsed.message);
}

/**
 * A field selector as the apiserver accepts it for `resource` in `group`
 * ('' for core): the syntax, then each field through that resource's label
 * conversion, which refuses unsupported fields with the apiserver's message.
 */
export function parseFieldSelector(
  text: string,
  group: string,
  resource: string,
): FieldSelector | SelectorError {
  const syntax = parseFieldSelectorSyntax(text);
  if (syntax instanceof SelectorError || syntax.requirements.length === 0) return syntax;
  const policy = fieldLabelPolicy(group, resource);
  const requirements: FieldRequirement[] = [];
  for (const req of syntax.requirements) {
    const converted = policy.convert(req.field);
    if (!converted.ok) return new SelectorError(converted.message);
    requirements.push({ ...req, field: converted.field });
  }
  return { requirements, text };
}

/**
 * The selectable fields of an object of `resource` in `group`, read from its
 * JSON as served, under the names parseFieldSelector converts to.
 */
export function fieldsOf(group: string, resource: string, obj: unknown): Record<string, string> {
  return fieldLabelPolicy(group, resource).fieldsOf(obj);
}

export function matchesFields(sel: FieldSelector, fields: Record<string, string>): boolean {
  for (const req of sel.requirements) {
    // fields.Set.Get: an absent field is "".
    const actual = Object.hasOwn(fields, req.field) ? (fields[req.field] ?? '') : '';
    if (req.operator === '!=' ? actual === req.value : actual !== req.value) return false;
  }
  return true;
}

/** Selector.RequiresExactMatch: the value the first `=`/`==` term on `field` pins it to. */
export function exactFieldValue(sel: FieldSelector, field: string): string | undefined {
  for (const req of sel.requirements) {
    if (req.field === field && req.operator !== '!=') return req.value;
  }
  return undefined;
}
