import { describe, expect, it } from 'vitest';
import type { FieldSelector, LabelRequirement, LabelSelector } from './selectors.ts';
import {
  exactFieldValue,
  fieldsOf,
  formatLabelSelector,
  labelSelectorFromObject,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseFieldSelectorSyntax,
  parseLabelSelector,
  SelectorError,
} from './selectors.ts';

// The apiserver's validation messages, spelled out so a drift shows up here.
const NAME_PART =
  "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const PREFIX_PART =
  "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME =
  "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
const BINARY_OPS = 'in, notin, =, ==, !=, gt, lt';

function req(
  key: string,
  operator: LabelRequirement['operator'],
  values: string[] = [],
): LabelRequirement {
  return { key, operator, values };
}

function mustParseLabels(text: string): LabelSelector {
  const sel = parseLabelSelector(text);
  if (sel instanceof SelectorError)
    throw new Error(`label selector ${JSON.stringify(text)} refused: ${sel.message}`);
  return sel;
}

function mustParseFields(text: string, group: string, resource: string): FieldSelector {
  const sel = parseFieldSelector(text, group, resource);
  if (sel instanceof SelectorError)
    throw new Error(`field selector ${JSON.stringify(text)} refused: ${sel.message}`);
  return sel;
}

describe('parseLabelSelector', () => {
  const valid: { text: string; want: LabelRequirement[] }[] = [
    { text: '', want: [] },
    { text: ' \t\r\n ', want: [] },
    { text: 'a', want: [req('a', 'exists')] },
    { text: '!a', want: [req('a', '!')] },
    { text: 'a=b', want: [req('a', '=', ['b'])] },
    { text: 'a==b', want: [req('a', '==', ['b'])] },
    { text: 'a!=b', want: [req('a', '!=', ['b'])] },
    { text: 'a=', want: [req('a', '=', [''])] },
    { text: 'a in (y,x,x)', want: [req('a', 'in', ['x', 'y'])] },
    { text: 'a notin (x)', want: [req('a', 'notin', ['x'])] },
    { text: 'a in ()', want: [req('a', 'in', [''])] },
    { text: 'a in (,)', want: [req('a', 'in', [''])] },
    { text: 'a in (x,)', want: [req('a', 'in', ['', 'x'])] },
    { text: 'a in (,x)', want: [req('a', 'in', ['', 'x'])] },
    { text: 'a in (x,,y)', want: [req('a', 'in', ['', 'x', 'y'])] },
    { text: 'x>5', want: [req('x', 'gt', ['5'])] },
    { text: 'x<10', want: [req('x', 'lt', ['10'])] },
    { text: 'b=1,a=2,c', want: [req('a', '=', ['2']), req('b', '=', ['1']), req('c', 'exists')] },
    {
      text: '  a = b ,\tc in ( x , y ) ,\n!d ',
      want: [req('a', '=', ['b']), req('c', 'in', ['x', 'y']), req('d', '!')],
    },
    { text: 'example.com/app=web', want: [req('example.com/app', '=', ['web'])] },
    { text: 'in=notin', want: [req('in', '=', ['notin'])] },
    { text: 'a in (in,notin)', want: [req('a', 'in', ['in', 'notin'])] },
    { text: `k=${'v'.repeat(63)}`, want: [req('k', '=', ['v'.repeat(63)])] },
    // Go's lexer reads a NUL as the end of input: what follows is not seen.
    { text: 'a=b \u0000c=d', want: [req('a', '=', ['b'])] },
  ];

  it.each(valid)('parses $text', ({ text, want }) => {
    const sel = parseLabelSelector(text);
    expect(sel).not.toBeInstanceOf(SelectorError);
    expect(sel).toEqual({ requirements: want, text });
  });

  const invalid: { text: string; message: string }[] = [
    { text: 'a=b c', message: "found 'c', expected: ',' or 'end of string'" },
    { text: 'a,', message: "found '', expected: identifier after ','" },
    { text: ',a', message: "found ',', expected: !, identifier, or 'end of string'" },
    { text: '=a', message: "found '=', expected: !, identifier, or 'end of string'" },
    { text: '!a=b', message: "found '=', expected: ',' or 'end of string'" },
    { text: '!', message: "unable to parse requirement: found '', expected: identifier" },
    { text: 'a b', message: `unable to parse requirement: found 'b', expected: ${BINARY_OPS}` },
    { text: 'a!', message: `unable to parse requirement: found '!', expected: ${BINARY_OPS}` },
    { text: 'a in x', message: "unable to parse requirement: found 'x' expected: '('" },
    { text: 'a in (x', message: "unable to parse requirement: found '', expected: ',' or ')'" },
    { text: 'a in (x y)', message: "unable to parse requirement: found 'y', expected: ',' or ')'" },
    {
      text: 'a in (=)',
      message: "unable to parse requirement: found '=', expected: ',', ')' or identifier",
    },
    {
      text: 'a in (x,=)',
      message: "unable to parse requirement: found '=', expected: ',', or identifier",
    },
    { text: 'a=(b)', message: "unable to parse requirement: found '(', expected: identifier" },
    {
      text: 'a_=b',
      message: `unable to parse requirement: <nil>: Invalid value: "a_": ${NAME_PART}`,
    },
    {
      text: `${'k'.repeat(64)}=v`,
      message: `unable to parse requirement: <nil>: Invalid value: "${'k'.repeat(64)}": name part must be no more than 63 characters`,
    },
    {
      text: '/a=b',
      message:
        'unable to parse requirement: <nil>: Invalid value: "/a": prefix part must be non-empty',
    },
    {
      text: 'Example.com/a',
      message: `unable to parse requirement: <nil>: Invalid value: "Example.com/a": ${PREFIX_PART}`,
    },
    {
      text: 'a/b/c',
      message: `unable to parse requirement: <nil>: Invalid value: "a/b/c": ${QUALIFIED_NAME}`,
    },
    {
      text: 'a=b_',
      message: `unable to parse requirement: values[0][a]: Invalid value: "b_": ${LABEL_VALUE}`,
    },
    {
      text: `a=${'v'.repeat(64)}`,
      message: `unable to parse requirement: values[0][a]: Invalid value: "${'v'.repeat(64)}": must be no more than 63 characters`,
    },
    {
      text: 'a in (c_,b_)',
      message: `unable to parse requirement: [values[0][a]: Invalid value: "b_": ${LABEL_VALUE}, values[1][a]: Invalid value: "c_": ${LABEL_VALUE}]`,
    },
    {
      text: 'a>b',
      message: `unable to parse requirement: values[0]: Invalid value: "b": for 'Gt', 'Lt' operators, the value must be an integer`,
    },
    {
      text: 'a<-1',
      message: `unable to parse requirement: values[0][a]: Invalid value: "-1": ${LABEL_VALUE}`,
    },
    {
      text: 'a\u0001=b',
      message: `unable to parse requirement: <nil>: Invalid value: "a\\x01": ${NAME_PART}`,
    },
    {
      text: 'a=caf\u00e9',
      message: `unable to parse requirement: values[0][a]: Invalid value: "café": ${LABEL_VALUE}`,
    },
  ];

  it.each(invalid)('refuses $text', ({ text, message }) => {
    const sel = parseLabelSelector(text);
    expect(sel).toBeInstanceOf(SelectorError);
    expect((sel as SelectorError).message).toBe(message);
  });

  it('parses a 10 KB selector of many requirements', () => {
    const text = Array.from({ length: 1_000 }, (_, i) => `key${i}=v${i}`).join(',');
    const sel = mustParseLabels(text);
    expect(sel.requirements).toHaveLength(1_000);
    expect(sel.requirements[0]).toEqual(req('key0', '=', ['v0']));
  });
});

describe('matchesLabels', () => {
  const labels = { app: 'web', tier: 'frontend', replicas: '10', empty: '' };
  const cases: { text: string; labels: Record<string, string> | undefined; want: boolean }[] = [
    { text: '', labels, want: true },
    { text: '', labels: undefined, want: true },
    { text: 'app=web', labels, want: true },
    { text: 'app==web', labels, want: true },
    { text: 'app=db', labels, want: false },
    { text: 'missing=x', labels, want: false },
    { text: 'app!=db', labels, want: true },
    { text: 'app!=web', labels, want: false },
    { text: 'missing!=x', labels, want: true },
    { text: 'app in (db,web)', labels, want: true },
    { text: 'app in (db)', labels, want: false },
    { text: 'missing in (x)', labels, want: false },
    { text: 'app notin (web)', labels, want: false },
    { text: 'app notin (db)', labels, want: true },
    { text: 'missing notin (x)', labels, want: true },
    { text: 'app', labels, want: true },
    { text: 'missing', labels, want: false },
    { text: '!app', labels, want: false },
    { text: '!missing', labels, want: true },
    { text: '!missing', labels: undefined, want: true },
    { text: 'app', labels: undefined, want: false },
    { text: 'empty=', labels, want: true },
    { text: 'missing=', labels, want: false },
    { text: 'empty in ()', labels, want: true },
    { text: 'app=web,tier=frontend', labels, want: true },
    { text: 'app=web,tier=backend', labels, want: false },
    { text: 'replicas>5', labels, want: true },
    { text: 'replicas>10', labels, want: false },
    { text: 'replicas<11', labels, want: true },
    { text: 'app>5', labels, want: false },
    { text: 'missing<5', labels, want: false },
    // Own properties only: Object.prototype is no label set.
    { text: 'constructor', labels: {}, want: false },
    { text: '!toString', labels: {}, want: true },
  ];

  it.each(cases)('$text on $labels -> $want', ({ text, labels: set, want }) => {
    expect(matchesLabels(mustParseLabels(text), set)).toBe(want);
  });

  it('filters 10,000 objects', () => {
    const sel = mustParseLabels('app=web,tier in (frontend),!canary');
    const objects = Array.from({ length: 10_000 }, (_, i) => ({
      app: i % 2 === 0 ? 'web' : 'db',
      tier: 'frontend',
      ...(i % 4 === 0 ? { canary: 'true' } : {}),
    }));
    expect(objects.filter((l) => matchesLabels(sel, l))).toHaveLength(2_500);
  });
});

describe('labelSelectorFromObject', () => {
  it('converts matchLabels and matchExpressions, sorted by key', () => {
    const sel = labelSelectorFromObject({
      matchLabels: { tier: 'frontend', app: 'web' },
      matchExpressions: [
        { key: 'env', operator: 'NotIn', values: ['dev'] },
        { key: 'canary', operator: 'DoesNotExist' },
        { key: 'zone', operator: 'In', values: ['b', 'a'] },
        { key: 'gpu', operator: 'Exists', values: [] },
      ],
    });
    expect(sel).not.toBeInstanceOf(SelectorError);
    const s = sel as LabelSelector;
    expect(s.requirements).toEqual([
      req('app', '=', ['web']),
      req('canary', '!'),
      req('env', 'notin', ['dev']),
      req('gpu', 'exists'),
      req('tier', '=', ['frontend']),
      req('zone', 'in', ['b', 'a']),
    ]);
    expect(s.text).toBe('app=web,!canary,env notin (dev),gpu,tier=frontend,zone in (a,b)');
    expect(
      matchesLabels(s, { app: 'web', tier: 'frontend', env: 'prod', gpu: '1', zone: 'a' }),
    ).toBe(true);
    expect(
      matchesLabels(s, { app: 'web', tier: 'frontend', env: 'prod', gpu: '1', zone: 'c' }),
    ).toBe(false);
  });

  it('treats an empty selector as everything', () => {
    const sel = labelSelectorFromObject({});
    expect(sel).toEqual({ requirements: [], text: '' });
    expect(matchesLabels(sel as LabelSelector, { any: 'thing' })).toBe(true);
  });

  it('treats a null selector as nothing', () => {
    const sel = labelSelectorFromObject(null);
    expect(sel).not.toBeInstanceOf(SelectorError);
    expect(matchesLabels(sel as LabelSelector, {})).toBe(false);
    expect(matchesLabels(sel as LabelSelector, undefined)).toBe(false);
  });

  const invalid: {
    name: string;
    obj: Parameters<typeof labelSelectorFromObject>[0];
    message: string;
  }[] = [
    {
      name: 'unknown operator',
      obj: { matchExpressions: [{ key: 'a', operator: 'in', values: ['x'] }] },
      message: '"in" is not a valid label selector operator',
    },
    {
      name: 'In without values',
      obj: { matchExpressions: [{ key: 'a', operator: 'In' }] },
      message:
        "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty",
    },
    {
      name: 'Exists with values',
      obj: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x', 'y'] }] },
      message:
        'values: Invalid value: []string{"x", "y"}: values set must be empty for exists and does not exist',
    },
    {
      name: 'invalid key',
      obj: { matchLabels: { a_: 'x' } },
      message: `key: Invalid value: "a_": ${NAME_PART}`,
    },
    {
      name: 'invalid key and value',
      obj: { matchLabels: { a_: 'x_' } },
      message: `[key: Invalid value: "a_": ${NAME_PART}, values[0][a_]: Invalid value: "x_": ${LABEL_VALUE}]`,
    },
  ];

  it.each(invalid)('refuses $name', ({ obj, message }) => {
    const sel = labelSelectorFromObject(obj);
    expect(sel).toBeInstanceOf(SelectorError);
    expect((sel as SelectorError).message).toBe(message);
  });

  it('refuses a malformed object at the boundary', () => {
    const sel = labelSelectorFromObject(
      JSON.parse('{"matchLabels":{"a":1}}') as { matchLabels: Record<string, string> },
    );
    expect(sel).toBeInstanceOf(SelectorError);
    expect((sel as SelectorError).message).toMatch(
      /^invalid label selector object: .*matchLabels\.a/s,
    );
  });
});

describe('formatLabelSelector', () => {
  it('prints the canonical form the apiserver uses', () => {
    expect(formatLabelSelector(mustParseLabels(' b in (y,x), a==1 ,!c,d,e>3,f<2,g!=h'))).toBe(
      'a==1,b in (x,y),!c,d,e>3,f<2,g!=h',
    );
  });
});

describe('parseFieldSelectorSyntax', () => {
  const valid: { text: string; want: FieldSelector['requirements'] }[] = [
    { text: '', want: [] },
    { text: ',,', want: [] },
    { text: 'metadata.name=foo', want: [{ field: 'metadata.name', operator: '=', value: 'foo' }] },
    {
      text: 'metadata.name==foo',
      want: [{ field: 'metadata.name', operator: '==', value: 'foo' }],
    },
    {
      text: 'metadata.name!=foo',
      want: [{ field: 'metadata.name', operator: '!=', value: 'foo' }],
    },
    { text: 'metadata.name=', want: [{ field: 'metadata.name', operator: '=', value: '' }] },
    {
      text: 'spec.nodeName=n1,metadata.name=a',
      want: [
        { field: 'metadata.name', operator: '=', value: 'a' },
        { field: 'spec.nodeName', operator: '=', value: 'n1' },
      ],
    },
    { text: 'a=x\\,y', want: [{ field: 'a', operator: '=', value: 'x,y' }] },
    { text: 'a=x\\=y', want: [{ field: 'a', operator: '=', value: 'x=y' }] },
    { text: 'a=x\\\\y', want: [{ field: 'a', operator: '=', value: 'x\\y' }] },
    // No trimming: the field keeps its spaces, as in Go.
    { text: 'a = b', want: [{ field: 'a ', operator: '=', value: ' b' }] },
  ];

  it.each(valid)('parses $text', ({ text, want }) => {
    expect(parseFieldSelectorSyntax(text)).toEqual({ requirements: want, text });
  });

  const invalid: { text: string; message: string }[] = [
    { text: 'foo', message: "invalid selector: 'foo'; can't understand 'foo'" },
    { text: 'a=b,foo', message: "invalid selector: 'a=b,foo'; can't understand 'foo'" },
    { text: 'a=b=c', message: 'invalid field selector: unescaped character in value: 61' },
    { text: 'a!==b', message: 'invalid field selector: unescaped character in value: 61' },
    { text: 'a=b\\x', message: 'invalid field selector: invalid escape sequence: \\x' },
    { text: 'a=b\\', message: 'invalid field selector: invalid escape sequence: \\' },
  ];

  it.each(invalid)('refuses $text', ({ text, message }) => {
    const sel = parseFieldSelectorSyntax(text);
    expect(sel).toBeInstanceOf(SelectorError);
    expect((sel as SelectorError).message).toBe(message);
  });
});

describe('parseFieldSelector per resource', () => {
  const accepted: { group: string; resource: string; labels: string[] }[] = [
    {
      group: '',
      resource: 'pods',
      labels: [
        'metadata.name',
        'metadata.namespace',
        'spec.nodeName',
        'spec.restartPolicy',
        'spec.schedulerName',
        'spec.serviceAccountName',
        'spec.hostNetwork',
        'status.phase',
        'status.podIP',
        'status.podIPs',
        'status.nominatedNodeName',
      ],
    },
    { group: '', resource: 'nodes', labels: ['metadata.name', 'spec.unschedulable'] },
    { group: '', resource: 'namespaces', labels: ['metadata.name', 'status.phase'] },
    { group: '', resource: 'secrets', labels: ['metadata.name', 'metadata.namespace', 'type'] },
    {
      group: '',
      resource: 'services',
      labels: ['metadata.name', 'metadata.namespace', 'spec.clusterIP', 'spec.type'],
    },
    {
      group: '',
      resource: 'replicationcontrollers',
      labels: ['metadata.name', 'metadata.namespace', 'status.replicas'],
    },
    {
      group: '',
      resource: 'events',
      labels: [
        'metadata.name',
        'metadata.namespace',
        'involvedObject.kind',
        'involvedObject.namespace',
        'involvedObject.name',
        'involvedObject.uid',
        'involvedObject.apiVersion',
        'involvedObject.resourceVersion',
        'involvedObject.fieldPath',
        'reason',
        'reportingComponent',
        'source',
        'type',
      ],
    },
    { group: '', resource: 'configmaps', labels: ['metadata.name', 'metadata.namespace'] },
    {
      group: 'batch',
      resource: 'jobs',
      labels: ['metadata.name', 'metadata.namespace', 'status.successful'],
    },
    { group: 'apps', resource: 'replicasets', labels: ['metadata.name', 'metadata.namespace'] },
    {
      group: 'certificates.k8s.io',
      resource: 'certificatesigningrequests',
      labels: ['metadata.name', 'spec.signerName'],
    },
    {
      group: 'resource.k8s.io',
      resource: 'resourceslices',
      labels: ['metadata.name', 'spec.nodeName', 'spec.driver'],
    },
    { group: 'example.com', resource: 'widgets', labels: ['metadata.name', 'metadata.namespace'] },
  ];

  for (const { group, resource, labels } of accepted) {
    it.each(labels)(`${group || 'core'}/${resource} accepts %s`, (label) => {
      expect(mustParseFields(`${label}=x`, group, resource).requirements).toEqual([
        { field: label, operator: '=', value: 'x' },
      ]);
    });
  }

  const converted: { group: string; resource: string; label: string; field: string }[] = [
    { group: '', resource: 'pods', label: 'spec.host', field: 'spec.nodeName' },
    {
      group: 'events.k8s.io',
      resource: 'events',
      label: 'regarding.kind',
      field: 'involvedObject.kind',
    },
    {
      group: 'events.k8s.io',
      resource: 'events',
      label: 'regarding.namespace',
      field: 'involvedObject.namespace',
    },
    {
      group: 'events.k8s.io',
      resource: 'events',
      label: 'regarding.name',
      field: 'involvedObject.name',
    },
    {
      group: 'events.k8s.io',
      resource: 'events',
      label: 'regarding.uid',
      field: 'involvedObject.uid',
    },
    {
      group: 'events.k8s.io',
      resource: 'events',
      label: 'regarding.apiVersion',
      field: 'involvedObject.apiVersion',
    },
    {
      group: 'events.k8s.io',
      resource: 'events',
      label: 'regarding.resourceVersion',
      field: 'involvedObject.resourceVersion',
    },
    {
      group: 'events.k8s.io',
      resource: 'events',
      label: 'regarding.fieldPath',
      field: 'involvedObject.fieldPath',
    },
    {
      group: 'events.k8s.io',
      resource: 'events',
      label: 'reportingController',
      field: 'reportingComponent',
    },
    { group: 'events.k8s.io', resource: 'events', label: 'reason', field: 'reason' },
    { group: 'events.k8s.io', resource: 'events', label: 'source', field: 'source' },
    { group: 'events.k8s.io', resource: 'events', label: 'type', field: 'type' },
  ];

  it.each(converted)(
    '$group/$resource reads $label as $field',
    ({ group, resource, label, field }) => {
      expect(mustParseFields(`${label}!=x`, group, resource).requirements).toEqual([
        { field, operator: '!=', value: 'x' },
      ]);
    },
  );

  const refused: { group: string; resource: string; text: string; message: string }[] = [
    {
      group: '',
      resource: 'pods',
      text: 'spec.foo=x',
      message: 'field label not supported: spec.foo',
    },
    {
      group: '',
      resource: 'pods',
      text: 'metadata.name = x',
      message: 'field label not supported: metadata.name ',
    },
    {
      group: '',
      resource: 'nodes',
      text: 'metadata.namespace=x',
      message: 'field label not supported: metadata.namespace',
    },
    {
      group: '',
      resource: 'namespaces',
      text: 'metadata.namespace=x',
      message: 'field label not supported: metadata.namespace',
    },
    { group: '', resource: 'secrets', text: 'data=x', message: 'field label not supported: data' },
    {
      group: 'events.k8s.io',
      resource: 'events',
      text: 'involvedObject.kind=Pod',
      message: 'field label not supported: involvedObject.kind',
    },
    {
      group: '',
      resource: 'configmaps',
      text: 'data.key=x',
      message:
        '"data.key" is not a known field selector: only "metadata.name", "metadata.namespace"',
    },
    {
      group: 'apps',
      resource: 'replicasets',
      text: 'status.replicas=0',
      message:
        '"status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"',
    },
    {
      group: 'batch',
      resource: 'jobs',
      text: 'spec.x=1',
      message: 'field label "spec.x" not supported for Job',
    },
    {
      group: 'resource.k8s.io',
      resource: 'resourceslices',
      text: 'spec.pool=x',
      message: 'field label not supported for resource.k8s.io/v1, Kind=ResourceSlice: spec.pool',
    },
    {
      group: 'example.com',
      resource: 'widgets',
      text: 'spec.size=1',
      message: 'field label not supported: spec.size',
    },
    // Terms are checked in sorted order: "a..." before "spec...".
    {
      group: '',
      resource: 'pods',
      text: 'spec.nodeName=n,aaa=1',
      message: 'field label not supported: aaa',
    },
    {
      group: '',
      resource: 'pods',
      text: 'spec.nodeName',
      message: "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'",
    },
  ];

  it.each(refused)('$group/$resource refuses $text', ({ group, resource, text, message }) => {
    const sel = parseFieldSelector(text, group, resource);
    expect(sel).toBeInstanceOf(SelectorError);
    expect((sel as SelectorError).message).toBe(message);
  });

  it('keeps the text as written', () => {
    expect(mustParseFields('spec.host=n1', '', 'pods').text).toBe('spec.host=n1');
  });
});

describe('fieldsOf', () => {
  it('reads every selectable pod field', () => {
    const pod = {
      metadata: { name: 'web-0', namespace: 'default' },
      spec: {
        nodeName: 'n1',
        restartPolicy: 'Always',
        schedulerName: 'default-scheduler',
        serviceAccountName: 'web',
        hostNetwork: true,
      },
      status: {
        phase: 'Running',
        podIP: '10.0.0.9',
        podIPs: [{ ip: '10.0.0.5' }, { ip: 'fd00::5' }],
        nominatedNodeName: 'n2',
      },
    };
    expect(fieldsOf('', 'pods', pod)).toEqual({
      'metadata.name': 'web-0',
      'metadata.namespace': 'default',
      'spec.nodeName': 'n1',
      'spec.restartPolicy': 'Always',
      'spec.schedulerName': 'default-scheduler',
      'spec.serviceAccountName': 'web',
      'spec.hostNetwork': 'true',
      'status.phase': 'Running',
      'status.podIP': '10.0.0.5',
      'status.podIPs': '',
      'status.nominatedNodeName': 'n2',
    });
  });

  it('gives the zero values of absent pod fields', () => {
    expect(
      fieldsOf('', 'pods', { metadata: { name: 'p' }, status: { podIP: '10.0.0.7' } }),
    ).toEqual({
      'metadata.name': 'p',
      'metadata.namespace': '',
      'spec.nodeName': '',
      'spec.restartPolicy': '',
      'spec.schedulerName': '',
      'spec.serviceAccountName': '',
      'spec.hostNetwork': 'false',
      'status.phase': '',
      'status.podIP': '10.0.0.7',
      'status.podIPs': '',
      'status.nominatedNodeName': '',
    });
  });

  const cases: {
    name: string;
    group: string;
    resource: string;
    obj: unknown;
    want: Record<string, string>;
  }[] = [
    {
      name: 'node',
      group: '',
      resource: 'nodes',
      obj: { metadata: { name: 'n1' }, spec: { unschedulable: true } },
      want: { 'metadata.name': 'n1', 'spec.unschedulable': 'true' },
    },
    {
      name: 'schedulable node',
      group: '',
      resource: 'nodes',
      obj: { metadata: { name: 'n2' }, spec: {} },
      want: { 'metadata.name': 'n2', 'spec.unschedulable': 'false' },
    },
    {
      name: 'namespace',
      group: '',
      resource: 'namespaces',
      obj: { metadata: { name: 'kube-system' }, status: { phase: 'Active' } },
      want: { 'metadata.name': 'kube-system', 'status.phase': 'Active' },
    },
    {
      name: 'secret',
      group: '',
      resource: 'secrets',
      obj: { metadata: { name: 's', namespace: 'ns' }, type: 'kubernetes.io/tls' },
      want: { 'metadata.name': 's', 'metadata.namespace': 'ns', type: 'kubernetes.io/tls' },
    },
    {
      name: 'service',
      group: '',
      resource: 'services',
      obj: {
        metadata: { name: 'kubernetes', namespace: 'default' },
        spec: { clusterIP: '10.96.0.1', type: 'ClusterIP' },
      },
      want: {
        'metadata.name': 'kubernetes',
        'metadata.namespace': 'default',
        'spec.clusterIP': '10.96.0.1',
        'spec.type': 'ClusterIP',
      },
    },
    {
      name: 'replication controller without status',
      group: '',
      resource: 'replicationcontrollers',
      obj: { metadata: { name: 'rc', namespace: 'ns' } },
      want: { 'metadata.name': 'rc', 'metadata.namespace': 'ns', 'status.replicas': '0' },
    },
    {
      name: 'job',
      group: 'batch',
      resource: 'jobs',
      obj: { metadata: { name: 'j', namespace: 'ns' }, status: { succeeded: 3 } },
      want: { 'metadata.name': 'j', 'metadata.namespace': 'ns', 'status.successful': '3' },
    },
    {
      name: 'core event, source falls back to reportingComponent',
      group: '',
      resource: 'events',
      obj: {
        metadata: { name: 'e', namespace: 'ns' },
        involvedObject: {
          kind: 'Pod',
          namespace: 'ns',
          name: 'web-0',
          uid: 'u1',
          apiVersion: 'v1',
          resourceVersion: '42',
          fieldPath: 'spec.containers{app}',
        },
        reason: 'Started',
        reportingComponent: 'kubelet',
        type: 'Normal',
      },
      want: {
        'metadata.name': 'e',
        'metadata.namespace': 'ns',
        'involvedObject.kind': 'Pod',
        'involvedObject.namespace': 'ns',
        'involvedObject.name': 'web-0',
        'involvedObject.uid': 'u1',
        'involvedObject.apiVersion': 'v1',
        'involvedObject.resourceVersion': '42',
        'involvedObject.fieldPath': 'spec.containers{app}',
        reason: 'Started',
        reportingComponent: 'kubelet',
        source: 'kubelet',
        type: 'Normal',
      },
    },
    {
      name: 'events.k8s.io event, mapped onto the core field names',
      group: 'events.k8s.io',
      resource: 'events',
      obj: {
        metadata: { name: 'e', namespace: 'ns' },
        regarding: { kind: 'Node', name: 'n1' },
        reason: 'NodeReady',
        reportingController: 'node-controller',
        deprecatedSource: { component: 'kubelet' },
        type: 'Normal',
      },
      want: {
        'metadata.name': 'e',
        'metadata.namespace': 'ns',
        'involvedObject.kind': 'Node',
        'involvedObject.namespace': '',
        'involvedObject.name': 'n1',
        'involvedObject.uid': '',
        'involvedObject.apiVersion': '',
        'involvedObject.resourceVersion': '',
        'involvedObject.fieldPath': '',
        reason: 'NodeReady',
        reportingComponent: 'node-controller',
        source: 'kubelet',
        type: 'Normal',
      },
    },
    {
      name: 'certificate signing request',
      group: 'certificates.k8s.io',
      resource: 'certificatesigningrequests',
      obj: { metadata: { name: 'csr-1' }, spec: { signerName: 'kubernetes.io/kubelet-serving' } },
      want: { 'metadata.name': 'csr-1', 'spec.signerName': 'kubernetes.io/kubelet-serving' },
    },
    {
      name: 'resource slice',
      group: 'resource.k8s.io',
      resource: 'resourceslices',
      obj: { metadata: { name: 'rs' }, spec: { nodeName: 'n1', driver: 'gpu.example.com' } },
      want: { 'metadata.name': 'rs', 'spec.nodeName': 'n1', 'spec.driver': 'gpu.example.com' },
    },
    {
      name: 'custom resource',
      group: 'example.com',
      resource: 'widgets',
      obj: { metadata: { name: 'w', namespace: 'ns' }, spec: { size: 3 } },
      want: { 'metadata.name': 'w', 'metadata.namespace': 'ns' },
    },
    {
      name: 'garbage input yields empty values',
      group: '',
      resource: 'configmaps',
      obj: 'not an object',
      want: { 'metadata.name': '', 'metadata.namespace': '' },
    },
    {
      name: 'wrongly typed fields read as absent',
      group: '',
      resource: 'nodes',
      obj: { metadata: { name: 7 }, spec: { unschedulable: 'true' } },
      want: { 'metadata.name': '', 'spec.unschedulable': 'false' },
    },
  ];

  it.each(cases)('$name', ({ group, resource, obj, want }) => {
    expect(fieldsOf(group, resource, obj)).toEqual(want);
  });
});

describe('matchesFields and exactFieldValue', () => {
  const pod = fieldsOf('', 'pods', {
    metadata: { name: 'web-0', namespace: 'default' },
    spec: { nodeName: 'n1' },
    status: { phase: 'Running' },
  });

  const cases: { text: string; want: boolean }[] = [
    { text: '', want: true },
    { text: 'spec.nodeName=n1', want: true },
    { text: 'spec.nodeName==n1', want: true },
    { text: 'spec.host=n1', want: true },
    { text: 'spec.nodeName=n2', want: false },
    { text: 'spec.nodeName!=n2', want: true },
    { text: 'spec.nodeName!=n1', want: false },
    { text: 'status.phase=Running,metadata.namespace=default', want: true },
    { text: 'status.phase!=Running,metadata.namespace=default', want: false },
    { text: 'spec.schedulerName=', want: true },
    { text: 'status.podIPs=', want: true },
    { text: 'status.podIPs=10.0.0.1', want: false },
    { text: 'spec.hostNetwork=false', want: true },
    { text: 'metadata.name=web-0,metadata.name=web-1', want: false },
  ];

  it.each(cases)('$text -> $want', ({ text, want }) => {
    expect(matchesFields(mustParseFields(text, '', 'pods'), pod)).toBe(want);
  });

  it('reads an absent field as empty', () => {
    const sel = mustParseFields('spec.nodeName=', '', 'pods');
    expect(matchesFields(sel, {})).toBe(true);
    expect(matchesFields(mustParseFields('spec.nodeName!=', '', 'pods'), {})).toBe(false);
  });

  it('matches escaped values', () => {
    const sel = mustParseFields('metadata.name=a\\,b', 'example.com', 'widgets');
    expect(
      matchesFields(sel, fieldsOf('example.com', 'widgets', { metadata: { name: 'a,b' } })),
    ).toBe(true);
  });

  const exact: { text: string; field: string; want: string | undefined }[] = [
    { text: 'spec.nodeName=n1', field: 'spec.nodeName', want: 'n1' },
    { text: 'spec.nodeName==n1', field: 'spec.nodeName', want: 'n1' },
    { text: 'spec.host=n1', field: 'spec.nodeName', want: 'n1' },
    { text: 'spec.nodeName!=n1', field: 'spec.nodeName', want: undefined },
    { text: 'spec.nodeName!=n0,spec.nodeName=n1', field: 'spec.nodeName', want: 'n1' },
    { text: 'metadata.name=b,metadata.name=a', field: 'metadata.name', want: 'a' },
    { text: 'status.phase=Running', field: 'spec.nodeName', want: undefined },
    { text: '', field: 'spec.nodeName', want: undefined },
  ];

  it.each(exact)('exactFieldValue($text, $field) = $want', ({ text, field, want }) => {
    expect(exactFieldValue(mustParseFields(text, '', 'pods'), field)).toBe(want);
  });
});
