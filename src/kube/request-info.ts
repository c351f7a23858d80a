import { goParseInt64, goQueryBoolIsFalse, goQuote } from './go-text.ts';
import { parseQuery, unescapePath } from './go-url.ts';
import type { FieldSelector } from './selectors.ts';
import {
  exactFieldValue,
  parseFieldSelectorSyntax,
  parseLabelSelector,
  SelectorError,
} from './selectors.ts';
import type { KubeStatus } from './status.ts';
import { badRequest, internalError } from './status.ts';

/**
 * HTTP method + request target -> kube-apiserver's RequestInfo, by the rules
 * of k8s.io/apiserver/pkg/endpoints/request/requestinfo.go (the version with
 * AuthorizeWithSelectors). On top of those rules, request targets that can
 * never name a real object, and that a URL-normalising hop (WHATWG URL,
 * a proxy) would read differently from the apiserver, are refused with 400:
 * malformed escapes, control characters, raw non-ASCII, `.`/`..` and empty
 * segments, an encoded `/` inside the segments the apiserver interprets, and
 * names the registry rejects (path.IsValidPathSegmentName).
 */
export interface RequestInfo {
  isResourceRequest: boolean;
  /** The URL path, percent-decoded once, as Go's net/http does. */
  path: string;
  /** get|list|watch|create|update|patch|delete|deletecollection|proxy; for non-resource requests the lower-case HTTP method. */
  verb: string;
  /**
   * 'api' | 'apis' | ''. As in Go, 'apis' is kept for `/apis/<group>/<version>`
   * discovery requests although they are not resource requests.
   */
  apiPrefix: string;
  /** '' for core. */
  apiGroup: string;
  apiVersion: string;
  /** '' when cluster-scoped or across all namespaces. */
  namespace: string;
  resource: string;
  subresource: string;
  name: string;
  /** The path from the resource on: resource/name/subresource/... */
  parts: string[];
  /** Raw `fieldSelector` of a list/watch/deletecollection ('' when absent or not applicable). */
  fieldSelector?: string;
  /** Raw `labelSelector` of a list/watch/deletecollection ('' when absent or not applicable). */
  labelSelector?: string;
}

/** A request the apiserver refuses before it reaches a handler. */
export class RequestInfoError extends Error {
  /** The HTTP status the apiserver answers with: 400, or 500 where it fails RequestInfo itself. */
  readonly code: number;
  constructor(message: string, code = 400) {
    super(message);
    this.name = 'RequestInfoError';
    this.code = code;
  }
}

/** The Status object to answer a RequestInfoError with. */
export function requestInfoErrorStatus(err: RequestInfoError): KubeStatus {
  return err.code >= 500 ? internalError(err.message) : badRequest(err.message);
}

const API_PREFIXES: ReadonlySet<string> = new Set(['api', 'apis']);
const GROUPLESS_API_PREFIXES: ReadonlySet<string> = new Set(['api']);
/** Legacy verbs given as a path prefix: /api/v1/watch/..., /api/v1/proxy/... */
const SPECIAL_VERBS: ReadonlySet<string> = new Set(['proxy', 'watch']);
const NAMESPACE_SUBRESOURCES: ReadonlySet<string> = new Set(['status', 'finalize']);
const VERBS_WITH_SELECTORS: ReadonlySet<string> = new Set(['list', 'watch', 'deletecollection']);
const METHOD_VERBS: ReadonlyMap<string, string> = new Map([
  ['POST', 'create'],
  ['GET', 'get'],
  ['HEAD', 'get'],
  ['PUT', 'update'],
  ['PATCH', 'patch'],
  ['DELETE', 'delete'],
]);
const ABSOLUTE_FORM = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*/;
const MESSAGE_URL_LIMIT = 256;

function quoteForMessage(s: string): string {
  return goQuote(s.length > MESSAGE_URL_LIMIT ? `${s.slice(0, MESSAGE_URL_LIMIT)}...` : s);
}

function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function hasNonAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return true;
  return false;
}

/** path.IsValidPathSegmentName, which the registry applies to every name it is given. */
function pathSegmentNameErrors(name: string): string[] {
  if (name === '.' || name === '..') return [`may not be '${name}'`];
  const errs: string[] = [];
  if (name.includes('/')) errs.push("may not contain '/'");
  if (name.includes('%')) errs.push("may not contain '%'");
  return errs;
}

const OUTER_SLASHES = /^\/+|\/+$/g;

/** requestinfo.go's splitPath: leading and trailing slashes trimmed. */
function splitPath(path: string): string[] {
  const trimmed = path.replace(OUTER_SLASHES, '');
  return trimmed === '' ? [] : trimmed.split('/');
}

interface ListOptionsView {
  watch: boolean;
  fieldSelector: FieldSelector | undefined;
}

/**
 * The parts of metainternalversion.ListOptions that RequestInfo uses,
 * decoded as the ParameterCodec does; undefined where decoding fails
 * (an unparsable selector or integer), in which case the apiserver falls
 * back to the raw `watch` parameter and sets no name.
 */
function decodeListOptions(query: Map<string, string[]>): ListOptionsView | undefined {
  const first = (key: string): string | undefined => query.get(key)?.[0];
  const labelSelector = first('labelSelector');
  if (labelSelector !== undefined && parseLabelSelector(labelSelector) instanceof SelectorError) {
    return undefined;
  }
  let fieldSelector: FieldSelector | undefined;
  const fieldText = first('fieldSelector');
  if (fieldText !== undefined) {
    const parsed = parseFieldSelectorSyntax(fieldText);
    if (parsed instanceof SelectorError) return undefined;
    fieldSelector = parsed;
  }
  for (const key of ['timeoutSeconds', 'limit']) {
    const value = first(key);
    if (value !== undefined && goParseInt64(value) === undefined) return undefined;
  }
  const watch = first('watch');
  return { watch: watch !== undefined && !goQueryBoolIsFalse(watch), fieldSelector };
}

interface Target {
  rawPath: string;
  rawQuery: string;
}

/** Origin-form (`/path?query`), absolute-form (`http://host/path`) or `*`, as Go's ParseRequestURI. */
function splitTarget(url: string): Target | RequestInfoError {
  if (url === '*') return { rawPath: '*', rawQuery: '' };
  let rest = url;
  if (!rest.startsWith('/')) {
    const absolute = ABSOLUTE_FORM.exec(rest);
    if (absolute === null) {
      return new RequestInfoError(`parse ${quoteForMessage(url)}: invalid URI for request`);
    }
    rest = rest.slice(absolute[0].length);
  }
  const q = rest.indexOf('?');
  return q < 0
    ? { rawPath: rest, rawQuery: '' }
    : { rawPath: rest.slice(0, q), rawQuery: rest.slice(q + 1) };
}

/**
 * Whether an encoded slash (%2F) decides how the apiserver reads the path:
 * Go splits the decoded path, so `pods/a%2Fb` is pod "a", subresource "b".
 * Only the tail after the subresource (a proxy path) may carry one.
 */
function encodedSlashInInterpretedParts(
  decodedSegments: readonly string[],
  info: RequestInfo,
): boolean {
  const pieces: { text: string; encodedBefore: boolean }[] = [];
  for (const segment of decodedSegments) {
    segment.split('/').forEach((text, j) => pieces.push({ text, encodedBefore: j > 0 }));
  }
  // splitPath trims the leading and trailing slash (there is at most one of each here).
  if (pieces[0]?.text === '') pieces.shift();
  if (pieces[pieces.length - 1]?.text === '') pieces.pop();
  const consumed = pieces.length - info.parts.length;
  const interpretedEnd = consumed + Math.min(info.parts.length, info.verb === 'proxy' ? 2 : 3);
  return pieces.some((piece, i) => piece.encodedBefore && i <= interpretedEnd);
}

interface DecodedTarget {
  rawPath: string;
  rawQuery: string;
  /** rawPath's segments, each percent-decoded on its own (so encoded slashes stay visible). */
  decodedSegments: string[];
  /** The decoded path, as Go's URL.Path. */
  path: string;
}

/** Reads the request target as Go's net/url would, refusing the hostile forms described above. */
function decodeTarget(url: string): DecodedTarget | RequestInfoError {
  if (hasControlCharacter(url)) {
    return new RequestInfoError('net/url: invalid control character in URL');
  }
  const target = splitTarget(url);
  if (target instanceof RequestInfoError) return target;
  const { rawPath, rawQuery } = target;
  if (hasNonAscii(rawPath)) {
    return new RequestInfoError(
      `invalid request path ${quoteForMessage(rawPath)}: non-ASCII characters must be percent-encoded`,
    );
  }
  const decodedSegments: string[] = [];
  for (const segment of rawPath.split('/')) {
    const decoded = unescapePath(segment);
    if (!decoded.ok) return new RequestInfoError(`parse ${quoteForMessage(url)}: ${decoded.error}`);
    decodedSegments.push(decoded.value);
  }
  const path = decodedSegments.join('/');
  if (path.includes('//')) {
    return new RequestInfoError(
      `invalid request path ${quoteForMessage(rawPath)}: empty path segments ("//") are not allowed`,
    );
  }
  if (path.split('/').some((segment) => segment === '.' || segment === '..')) {
    return new RequestInfoError(
      `invalid request path ${quoteForMessage(rawPath)}: "." and ".." segments are not allowed`,
    );
  }
  return { rawPath, rawQuery, decodedSegments, path };
}

/** A GET without a name is a list or a watch, possibly pinned to one name by its field selector. */
function resolveCollectionGet(info: RequestInfo, query: Map<string, string[]>): void {
  const options = decodeListOptions(query);
  let watch: boolean;
  if (options === undefined) {
    // The fallback reads the raw value with strings.ToLower, not EqualFold.
    const raw = query.get('watch')?.[0]?.toLowerCase();
    watch = raw !== undefined && raw !== 'false' && raw !== '0';
  } else {
    watch = options.watch;
  }
  info.verb = watch ? 'watch' : 'list';
  // A list/watch pinned to one name is authorized as that name.
  const pinned =
    options?.fieldSelector === undefined
      ? undefined
      : exactFieldValue(options.fieldSelector, 'metadata.name');
  if (pinned !== undefined && pinned !== '' && pathSegmentNameErrors(pinned).length === 0) {
    info.name = pinned;
  }
}

/** Builds the RequestInfo kube-apiserver would derive for `method` and request target `url`. */
export function parseRequestInfo(method: string, url: string): RequestInfo | RequestInfoError {
  const target = decodeTarget(url);
  if (target instanceof RequestInfoError) return target;
  const { rawPath, rawQuery, decodedSegments, path } = target;

  const info: RequestInfo = {
    isResourceRequest: false,
    path,
    verb: method.toLowerCase(),
    apiPrefix: '',
    apiGroup: '',
    apiVersion: '',
    namespace: '',
    resource: '',
    subresource: '',
    name: '',
    parts: [],
  };

  const allParts = splitPath(path);
  const prefix = allParts[0];
  if (allParts.length < 3 || prefix === undefined || !API_PREFIXES.has(prefix)) return info;
  info.apiPrefix = prefix;
  let current = allParts.slice(1);
  if (!GROUPLESS_API_PREFIXES.has(prefix)) {
    if (current.length < 3) return info;
    info.apiGroup = current[0] ?? '';
    current = current.slice(1);
  }
  info.isResourceRequest = true;
  info.apiVersion = current[0] ?? '';
  current = current.slice(1);

  let verbViaPathPrefix = false;
  const head = current[0] ?? '';
  if (SPECIAL_VERBS.has(head)) {
    if (current.length < 2) {
      const shown = rawQuery === '' ? rawPath : `${rawPath}?${rawQuery}`;
      return new RequestInfoError(
        `failed to create RequestInfo: unable to determine kind and namespace from url, ${shown}`,
        500,
      );
    }
    info.verb = head;
    current = current.slice(1);
    verbViaPathPrefix = true;
  } else {
    info.verb = METHOD_VERBS.get(method) ?? '';
  }

  if (current[0] === 'namespaces' && current.length > 1) {
    info.namespace = current[1] ?? '';
    // /namespaces/{name}/status is the namespace's own subresource, not a resource inside it.
    if (current.length > 2 && !NAMESPACE_SUBRESOURCES.has(current[2] ?? ''))
      current = current.slice(2);
  }
  info.parts = current;
  if (current.length >= 3 && info.verb !== 'proxy') info.subresource = current[2] ?? '';
  if (current.length >= 2) info.name = current[1] ?? '';
  if (current.length >= 1) info.resource = current[0] ?? '';

  // Quoting and re-splitting cost ~10 µs per request on the hub's hot path;
  // both are needed only when a segment decoded to something with a '/'.
  if (
    decodedSegments.some((segment) => segment.includes('/')) &&
    encodedSlashInInterpretedParts(decodedSegments, info)
  ) {
    return new RequestInfoError(
      `invalid request path ${quoteForMessage(rawPath)}: an encoded '/' (%2F) is not allowed in the namespace, resource, name or subresource`,
    );
  }
  if (info.name !== '') {
    const nameErrs = pathSegmentNameErrors(info.name);
    if (nameErrs.length > 0) {
      return new RequestInfoError(
        `Name parameter invalid: ${goQuote(info.name)}: ${nameErrs.join(';')}`,
      );
    }
  }

  const query = parseQuery(rawQuery);
  if (info.name === '' && info.verb === 'get') resolveCollectionGet(info, query);
  if (info.name === '' && info.verb === 'delete') info.verb = 'deletecollection';

  info.fieldSelector = '';
  info.labelSelector = '';
  // Selectors are not honoured on the legacy /watch/ prefix, which has single-object endpoints.
  if (!verbViaPathPrefix && VERBS_WITH_SELECTORS.has(info.verb)) {
    info.fieldSelector = query.get('fieldSelector')?.[0] ?? '';
    info.labelSelector = query.get('labelSelector')?.[0] ?? '';
  }
  return info;
}
