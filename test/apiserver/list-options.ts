import { badRequest, invalid, type KubeStatus } from '../../src/kube/status.ts';

/**
 * The query parameters of list and watch (metav1.ListOptions), decoded and
 * validated as the apiserver does (apimachinery's ValidateListOptions).
 */
export interface ListOptions {
  labelSelector: string;
  fieldSelector: string;
  /** undefined when the parameter is absent (a different meaning from "0"). */
  resourceVersion: string | undefined;
  resourceVersionMatch: '' | 'Exact' | 'NotOlderThan';
  limit: number;
  continueToken: string;
  allowWatchBookmarks: boolean;
  /** Seconds; undefined = the server's default watch lifetime. */
  timeoutSeconds: number | undefined;
  sendInitialEvents: boolean | undefined;
}

type Cause = { field: string; message: string; reason: string };

function forbiddenCause(field: string, detail: string): Cause {
  return { field, reason: 'FieldValueForbidden', message: `Forbidden: ${detail}` };
}

function listOptionsInvalid(causes: Cause[]): KubeStatus {
  return invalid('ListOptions', 'meta.k8s.io', '', causes);
}

function parseBool(value: string | null): boolean | undefined {
  if (value === null) return undefined;
  // Go's strconv.ParseBool as the query decoder uses it.
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False', ''].includes(value)) return false;
  return undefined;
}

function parseInteger(name: string, value: string | null): number | KubeStatus | undefined {
  if (value === null || value === '') return undefined;
  if (!/^-?\d+$/.test(value)) {
    return badRequest(
      `strconv.ParseInt: parsing ${JSON.stringify(value)}: invalid syntax (${name})`,
    );
  }
  return Number(value);
}

export function parseListOptions(query: URLSearchParams, watch: boolean): ListOptions | KubeStatus {
  const limit = parseInteger('limit', query.get('limit'));
  if (typeof limit === 'object') return limit;
  const timeout = parseInteger('timeoutSeconds', query.get('timeoutSeconds'));
  if (typeof timeout === 'object') return timeout;
  const match = query.get('resourceVersionMatch') ?? '';
  const rv = query.get('resourceVersion') ?? undefined;
  const continueToken = query.get('continue') ?? '';
  const sendInitialEvents = parseBool(query.get('sendInitialEvents'));
  const allowWatchBookmarks = parseBool(query.get('allowWatchBookmarks')) ?? false;

  const causes: Cause[] = [];
  if (watch) {
    if (sendInitialEvents !== undefined && match !== 'NotOlderThan') {
      causes.push(
        forbiddenCause(
          'resourceVersionMatch',
          'sendInitialEvents requires setting resourceVersionMatch to NotOlderThan',
        ),
      );
    }
    if (sendInitialEvents === true && !allowWatchBookmarks) {
      causes.push(
        forbiddenCause(
          'allowWatchBookmarks',
          'allowWatchBookmarks must be set to true when sendInitialEvents is true',
        ),
      );
    }
    if (match !== '') {
      if (sendInitialEvents === undefined) {
        causes.push(
          forbiddenCause(
            'resourceVersionMatch',
            'resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided',
          ),
        );
      }
      if (match !== 'NotOlderThan') {
        causes.push({
          field: 'resourceVersionMatch',
          reason: 'FieldValueNotSupported',
          message: `Unsupported value: ${JSON.stringify(match)}: supported values: "NotOlderThan"`,
        });
      }
    }
  } else {
    if (match !== '') {
      if (rv === undefined || rv === '') {
        causes.push(
          forbiddenCause(
            'resourceVersionMatch',
            'resourceVersionMatch is forbidden unless resourceVersion is provided',
          ),
        );
      }
      if (continueToken !== '') {
        causes.push(
          forbiddenCause(
            'resourceVersionMatch',
            'resourceVersionMatch is forbidden when continue is provided',
          ),
        );
      }
      if (match !== 'Exact' && match !== 'NotOlderThan') {
        causes.push({
          field: 'resourceVersionMatch',
          reason: 'FieldValueNotSupported',
          message: `Unsupported value: ${JSON.stringify(match)}: supported values: "Exact", "NotOlderThan", ""`,
        });
      }
      if (match === 'Exact' && rv === '0') {
        causes.push(
          forbiddenCause(
            'resourceVersionMatch',
            'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
          ),
        );
      }
    }
    if (sendInitialEvents !== undefined) {
      causes.push(forbiddenCause('sendInitialEvents', 'sendInitialEvents is forbidden for list'));
    }
  }
  if (causes.length > 0) return listOptionsInvalid(causes);

  return {
    labelSelector: query.get('labelSelector') ?? '',
    fieldSelector: query.get('fieldSelector') ?? '',
    resourceVersion: rv,
    resourceVersionMatch: match as ListOptions['resourceVersionMatch'],
    limit: limit !== undefined && limit > 0 ? limit : 0,
    continueToken,
    allowWatchBookmarks,
    timeoutSeconds: timeout !== undefined && timeout > 0 ? timeout : undefined,
    sendInitialEvents,
  };
}

/** A resourceVersion parameter as a number; "" and undefined are "unset". */
export function parseResourceVersion(value: string | undefined): number | undefined | KubeStatus {
  if (value === undefined || value === '') return undefined;
  if (!/^\d+$/.test(value)) return badRequest(`invalid resource version: ${JSON.stringify(value)}`);
  return Number(value);
}
