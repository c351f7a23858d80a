import { goQuote } from './go-text.ts';

/**
 * Field selectors per resource, as kube-apiserver answers them. Two tables
 * meet here:
 *  - which labels a list/watch may select on and what each label means: the
 *    scheme's field label conversion funcs (pkg/apis/<group>/<version>/
 *    conversion.go); a refused label fails the request with their message;
 *  - which values an object offers: the registry's GetAttrs /
 *    ToSelectableFields (pkg/registry/<group>/<resource>/strategy.go), read
 *    here from the object's served (v1) JSON. The apiserver builds them from
 *    typed structs, so an absent string is "", an absent integer "0" and an
 *    absent boolean "false".
 */

export type FieldLabelConversion = { ok: true; field: string } | { ok: false; message: string };

export interface FieldLabelPolicy {
  convert(label: string): FieldLabelConversion;
  fieldsOf(obj: unknown): Record<string, string>;
}

function member(obj: unknown, ...path: readonly string[]): unknown {
  let current = obj;
  for (const key of path) {
    if (typeof current !== 'object' || current === null || Array.isArray(current)) return undefined;
    if (!Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** strconv.Itoa of an int32 field. */
function integer(value: unknown): string {
  return typeof value === 'number' && Number.isInteger(value) ? String(value) : '0';
}

/** strconv.FormatBool / fmt.Sprint of a bool field. */
function boolean(value: unknown): string {
  return value === true ? 'true' : 'false';
}

/** generic.ObjectMetaFieldsSet: cluster-scoped kinds have no metadata.namespace. */
function metaFields(obj: unknown, namespaced: boolean): Record<string, string> {
  const fields: Record<string, string> = { 'metadata.name': text(member(obj, 'metadata', 'name')) };
  if (namespaced) fields['metadata.namespace'] = text(member(obj, 'metadata', 'namespace'));
  return fields;
}

/** The conversion funcs' own refusal, used by most core kinds. */
function notSupported(label: string): string {
  return `field label not supported: ${label}`;
}

function policy(
  labels: readonly (string | readonly [label: string, field: string])[],
  refuse: (label: string) => string,
  fieldsOf: (obj: unknown) => Record<string, string>,
): FieldLabelPolicy {
  const accepted = new Map<string, string>(
    labels.map((entry) => (typeof entry === 'string' ? [entry, entry] : [entry[0], entry[1]])),
  );
  return {
    convert(label) {
      const field = accepted.get(label);
      return field === undefined ? { ok: false, message: refuse(label) } : { ok: true, field };
    },
    fieldsOf,
  };
}

const INVOLVED_OBJECT_FIELDS = [
  'kind',
  'namespace',
  'name',
  'uid',
  'apiVersion',
  'resourceVersion',
  'fieldPath',
] as const;

/**
 * core/v1 Event's selectable fields, from the object reference, reporting
 * controller and source found under the given JSON names (core/v1 and
 * events.k8s.io/v1 name them differently; the field set is the same).
 */
function eventFields(
  obj: unknown,
  names: { reference: string; reportingController: string; source: string },
): Record<string, string> {
  const fields = metaFields(obj, true);
  for (const key of INVOLVED_OBJECT_FIELDS) {
    fields[`involvedObject.${key}`] = text(member(obj, names.reference, key));
  }
  const reportingController = text(member(obj, names.reportingController));
  fields['reason'] = text(member(obj, 'reason'));
  fields['reportingComponent'] = reportingController;
  fields['source'] = text(member(obj, names.source, 'component')) || reportingController;
  fields['type'] = text(member(obj, 'type'));
  return fields;
}

const podPolicy = policy(
  [
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
    // Old v1 clients send spec.host; the apiserver reads it as spec.nodeName.
    ['spec.host', 'spec.nodeName'],
  ],
  notSupported,
  (obj) => {
    // v1 -> internal conversion makes status.podIP the first of podIPs when both exist.
    const podIPs = member(obj, 'status', 'podIPs');
    const podIP =
      Array.isArray(podIPs) && podIPs.length > 0
        ? text(member(podIPs[0], 'ip'))
        : text(member(obj, 'status', 'podIP'));
    return {
      ...metaFields(obj, true),
      'spec.nodeName': text(member(obj, 'spec', 'nodeName')),
      'spec.restartPolicy': text(member(obj, 'spec', 'restartPolicy')),
      'spec.schedulerName': text(member(obj, 'spec', 'schedulerName')),
      'spec.serviceAccountName': text(member(obj, 'spec', 'serviceAccountName')),
      'spec.hostNetwork': boolean(member(obj, 'spec', 'hostNetwork')),
      'status.phase': text(member(obj, 'status', 'phase')),
      'status.podIP': podIP,
      // Accepted by the conversion func but never filled in by ToSelectableFields,
      // so the apiserver compares it against "".
      'status.podIPs': '',
      'status.nominatedNodeName': text(member(obj, 'status', 'nominatedNodeName')),
    };
  },
);

const CORE_EVENT_NAMES = {
  reference: 'involvedObject',
  reportingController: 'reportingComponent',
  source: 'source',
};
const EVENTS_V1_NAMES = {
  reference: 'regarding',
  reportingController: 'reportingController',
  source: 'deprecatedSource',
};

const POLICIES: ReadonlyMap<string, FieldLabelPolicy> = new Map([
  ['/pods', podPolicy],
  [
    '/nodes',
    policy(['metadata.name', 'spec.unschedulable'], notSupported, (obj) => ({
      ...metaFields(obj, false),
      'spec.unschedulable': boolean(member(obj, 'spec', 'unschedulable')),
    })),
  ],
  [
    '/replicationcontrollers',
    policy(['metadata.name', 'metadata.namespace', 'status.replicas'], notSupported, (obj) => ({
      ...metaFields(obj, true),
      'status.replicas': integer(member(obj, 'status', 'replicas')),
    })),
  ],
  [
    '/events',
    policy(
      [
        ...INVOLVED_OBJECT_FIELDS.map((key) => `involvedObject.${key}`),
        'reason',
        'reportingComponent',
        'source',
        'type',
        'metadata.namespace',
        'metadata.name',
      ],
      notSupported,
      (obj) => eventFields(obj, CORE_EVENT_NAMES),
    ),
  ],
  [
    '/namespaces',
    policy(['status.phase', 'metadata.name'], notSupported, (obj) => ({
      ...metaFields(obj, false),
      'status.phase': text(member(obj, 'status', 'phase')),
    })),
  ],
  [
    '/secrets',
    policy(['type', 'metadata.namespace', 'metadata.name'], notSupported, (obj) => ({
      ...metaFields(obj, true),
      type: text(member(obj, 'type')),
    })),
  ],
  [
    '/services',
    policy(
      ['metadata.namespace', 'metadata.name', 'spec.clusterIP', 'spec.type'],
      notSupported,
      (obj) => ({
        ...metaFields(obj, true),
        'spec.clusterIP': text(member(obj, 'spec', 'clusterIP')),
        'spec.type': text(member(obj, 'spec', 'type')),
      }),
    ),
  ],
  [
    'batch/jobs',
    policy(
      ['metadata.name', 'metadata.namespace', 'status.successful'],
      (label) => `field label ${goQuote(label)} not supported for Job`,
      (obj) => ({
        ...metaFields(obj, true),
        'status.successful': integer(member(obj, 'status', 'succeeded')),
      }),
    ),
  ],
  [
    'events.k8s.io/events',
    // events.k8s.io/v1 renamed the fields; the apiserver maps them back onto
    // core Event's field set, which is what the selector then matches.
    policy(
      [
        'reason',
        ...INVOLVED_OBJECT_FIELDS.map(
          (key) => [`regarding.${key}`, `involvedObject.${key}`] as const,
        ),
        ['reportingController', 'reportingComponent'],
        'source',
        'type',
        'metadata.namespace',
        'metadata.name',
      ],
      notSupported,
      (obj) => eventFields(obj, EVENTS_V1_NAMES),
    ),
  ],
  [
    'certificates.k8s.io/certificatesigningrequests',
    policy(['metadata.name', 'spec.signerName'], notSupported, (obj) => ({
      ...metaFields(obj, false),
      'spec.signerName': text(member(obj, 'spec', 'signerName')),
    })),
  ],
  [
    'certificates.k8s.io/clustertrustbundles',
    policy(['metadata.name', 'spec.signerName'], notSupported, (obj) => ({
      ...metaFields(obj, false),
      'spec.signerName': text(member(obj, 'spec', 'signerName')),
    })),
  ],
  [
    'resource.k8s.io/resourceslices',
    policy(
      ['metadata.name', 'spec.nodeName', 'spec.driver'],
      (label) => `field label not supported for resource.k8s.io/v1, Kind=ResourceSlice: ${label}`,
      (obj) => ({
        ...metaFields(obj, false),
        'spec.nodeName': text(member(obj, 'spec', 'nodeName')),
        'spec.driver': text(member(obj, 'spec', 'driver')),
      }),
    ),
  ],
]);

/** API groups compiled into kube-apiserver (as opposed to CRDs and aggregated APIs). */
const BUILT_IN_GROUPS: ReadonlySet<string> = new Set([
  '',
  'admissionregistration.k8s.io',
  'apiextensions.k8s.io',
  'apiregistration.k8s.io',
  'apps',
  'authentication.k8s.io',
  'authorization.k8s.io',
  'autoscaling',
  'batch',
  'certificates.k8s.io',
  'coordination.k8s.io',
  'discovery.k8s.io',
  'events.k8s.io',
  'flowcontrol.apiserver.k8s.io',
  'internal.apiserver.k8s.io',
  'networking.k8s.io',
  'node.k8s.io',
  'policy',
  'rbac.authorization.k8s.io',
  'resource.k8s.io',
  'scheduling.k8s.io',
  'storage.k8s.io',
  'storagemigration.k8s.io',
]);

const META_ONLY_LABELS = ['metadata.name', 'metadata.namespace'];

/**
 * Built-in kinds without a conversion func of their own (configmaps,
 * deployments, replicasets in apps/v1, ...) get the scheme's
 * DefaultMetaV1FieldSelectorConversion.
 */
const builtInMetaOnlyPolicy = policy(
  META_ONLY_LABELS,
  (label) =>
    `${goQuote(label)} is not a known field selector: only "metadata.name", "metadata.namespace"`,
  (obj) => metaFields(obj, true),
);

/**
 * Custom resources: the CRD handler's converter. CRD selectableFields are
 * not known here (they live in the CRD), so only metadata is selectable.
 */
const customResourcePolicy = policy(META_ONLY_LABELS, notSupported, (obj) => metaFields(obj, true));

export function fieldLabelPolicy(group: string, resource: string): FieldLabelPolicy {
  const known = POLICIES.get(`${group}/${resource}`);
  if (known !== undefined) return known;
  return BUILT_IN_GROUPS.has(group) ? builtInMetaOnlyPolicy : customResourcePolicy;
}
