import { describe, expect, it } from 'vitest';
import type { RequestInfo } from './request-info.ts';
import { parseRequestInfo, RequestInfoError, requestInfoErrorStatus } from './request-info.ts';

function resource(fields: Partial<RequestInfo> & Pick<RequestInfo, 'path' | 'verb'>): RequestInfo {
  return {
    isResourceRequest: true,
    apiPrefix: 'api',
    apiGroup: '',
    apiVersion: 'v1',
    namespace: '',
    resource: '',
    subresource: '',
    name: '',
    parts: [],
    fieldSelector: '',
    labelSelector: '',
    ...fields,
  };
}

function nonResource(path: string, verb: string, apiPrefix = ''): RequestInfo {
  return {
    isResourceRequest: false,
    path,
    verb,
    apiPrefix,
    apiGroup: '',
    apiVersion: '',
    namespace: '',
    resource: '',
    subresource: '',
    name: '',
    parts: [],
  };
}

const POD = '/api/v1/namespaces/default/pods/web-0';
const longName = 'x'.repeat(10_240);
const longProxyTail = 'a/'.repeat(5_000);

interface OkCase {
  name: string;
  method: string;
  url: string;
  want: RequestInfo;
}

const okCases: OkCase[] = [
  // Non-resource and discovery paths, exactly as requestinfo.go classifies them.
  { name: 'root', method: 'GET', url: '/', want: nonResource('/', 'get') },
  { name: 'healthz', method: 'GET', url: '/healthz', want: nonResource('/healthz', 'get') },
  {
    name: 'readyz with query',
    method: 'GET',
    url: '/readyz?verbose',
    want: nonResource('/readyz', 'get'),
  },
  { name: 'livez', method: 'GET', url: '/livez', want: nonResource('/livez', 'get') },
  { name: 'version', method: 'GET', url: '/version', want: nonResource('/version', 'get') },
  { name: 'metrics', method: 'GET', url: '/metrics', want: nonResource('/metrics', 'get') },
  {
    name: 'openapi v2',
    method: 'GET',
    url: '/openapi/v2',
    want: nonResource('/openapi/v2', 'get'),
  },
  {
    name: 'openapi v3 group path is not under /apis',
    method: 'GET',
    url: '/openapi/v3/apis/apps/v1',
    want: nonResource('/openapi/v3/apis/apps/v1', 'get'),
  },
  { name: '/api discovery', method: 'GET', url: '/api', want: nonResource('/api', 'get') },
  { name: '/api/v1 discovery', method: 'GET', url: '/api/v1', want: nonResource('/api/v1', 'get') },
  { name: '/apis discovery', method: 'GET', url: '/apis', want: nonResource('/apis', 'get') },
  {
    name: '/apis/group discovery',
    method: 'GET',
    url: '/apis/apps',
    want: nonResource('/apis/apps', 'get'),
  },
  {
    name: '/apis/group/version discovery keeps the apis prefix, as Go does',
    method: 'GET',
    url: '/apis/apps/v1',
    want: nonResource('/apis/apps/v1', 'get', 'apis'),
  },
  {
    name: 'non-resource verb is the lower-case method',
    method: 'POST',
    url: '/healthz',
    want: nonResource('/healthz', 'post'),
  },
  { name: 'OPTIONS *', method: 'OPTIONS', url: '*', want: nonResource('*', 'options') },
  {
    name: 'garbage query on a non-resource path',
    method: 'GET',
    url: '/healthz?%%%&&==;;',
    want: nonResource('/healthz', 'get'),
  },

  // Resource requests.
  {
    name: 'list across namespaces',
    method: 'GET',
    url: '/api/v1/pods',
    want: resource({ path: '/api/v1/pods', verb: 'list', resource: 'pods', parts: ['pods'] }),
  },
  {
    name: 'list in a namespace',
    method: 'GET',
    url: '/api/v1/namespaces/default/pods',
    want: resource({
      path: '/api/v1/namespaces/default/pods',
      verb: 'list',
      namespace: 'default',
      resource: 'pods',
      parts: ['pods'],
    }),
  },
  {
    name: 'get',
    method: 'GET',
    url: POD,
    want: resource({
      path: POD,
      verb: 'get',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      parts: ['pods', 'web-0'],
    }),
  },
  {
    name: 'HEAD is get',
    method: 'HEAD',
    url: POD,
    want: resource({
      path: POD,
      verb: 'get',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      parts: ['pods', 'web-0'],
    }),
  },
  {
    name: 'create',
    method: 'POST',
    url: '/api/v1/namespaces/default/pods',
    want: resource({
      path: '/api/v1/namespaces/default/pods',
      verb: 'create',
      namespace: 'default',
      resource: 'pods',
      parts: ['pods'],
    }),
  },
  {
    name: 'update',
    method: 'PUT',
    url: POD,
    want: resource({
      path: POD,
      verb: 'update',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      parts: ['pods', 'web-0'],
    }),
  },
  {
    name: 'patch',
    method: 'PATCH',
    url: POD,
    want: resource({
      path: POD,
      verb: 'patch',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      parts: ['pods', 'web-0'],
    }),
  },
  {
    name: 'delete',
    method: 'DELETE',
    url: POD,
    want: resource({
      path: POD,
      verb: 'delete',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      parts: ['pods', 'web-0'],
    }),
  },
  {
    name: 'DELETE on a collection is deletecollection, with its selectors',
    method: 'DELETE',
    url: '/api/v1/namespaces/default/pods?labelSelector=app%3Dweb&fieldSelector=status.phase%3DFailed',
    want: resource({
      path: '/api/v1/namespaces/default/pods',
      verb: 'deletecollection',
      namespace: 'default',
      resource: 'pods',
      parts: ['pods'],
      labelSelector: 'app=web',
      fieldSelector: 'status.phase=Failed',
    }),
  },
  {
    name: 'unknown method on a resource has an empty verb',
    method: 'OPTIONS',
    url: POD,
    want: resource({
      path: POD,
      verb: '',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      parts: ['pods', 'web-0'],
    }),
  },
  {
    name: 'namespaces collection',
    method: 'GET',
    url: '/api/v1/namespaces',
    want: resource({
      path: '/api/v1/namespaces',
      verb: 'list',
      resource: 'namespaces',
      parts: ['namespaces'],
    }),
  },
  {
    name: 'a namespace is resource namespaces, and its own namespace',
    method: 'GET',
    url: '/api/v1/namespaces/foo',
    want: resource({
      path: '/api/v1/namespaces/foo',
      verb: 'get',
      namespace: 'foo',
      resource: 'namespaces',
      name: 'foo',
      parts: ['namespaces', 'foo'],
    }),
  },
  {
    name: 'namespace finalize subresource',
    method: 'PUT',
    url: '/api/v1/namespaces/foo/finalize',
    want: resource({
      path: '/api/v1/namespaces/foo/finalize',
      verb: 'update',
      namespace: 'foo',
      resource: 'namespaces',
      name: 'foo',
      subresource: 'finalize',
      parts: ['namespaces', 'foo', 'finalize'],
    }),
  },
  {
    name: 'namespace status subresource',
    method: 'PATCH',
    url: '/api/v1/namespaces/foo/status',
    want: resource({
      path: '/api/v1/namespaces/foo/status',
      verb: 'patch',
      namespace: 'foo',
      resource: 'namespaces',
      name: 'foo',
      subresource: 'status',
      parts: ['namespaces', 'foo', 'status'],
    }),
  },
  {
    name: 'pod status',
    method: 'PUT',
    url: `${POD}/status`,
    want: resource({
      path: `${POD}/status`,
      verb: 'update',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      subresource: 'status',
      parts: ['pods', 'web-0', 'status'],
    }),
  },
  {
    name: 'eviction',
    method: 'POST',
    url: `${POD}/eviction`,
    want: resource({
      path: `${POD}/eviction`,
      verb: 'create',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      subresource: 'eviction',
      parts: ['pods', 'web-0', 'eviction'],
    }),
  },
  {
    name: 'service account token',
    method: 'POST',
    url: '/api/v1/namespaces/default/serviceaccounts/default/token',
    want: resource({
      path: '/api/v1/namespaces/default/serviceaccounts/default/token',
      verb: 'create',
      namespace: 'default',
      resource: 'serviceaccounts',
      name: 'default',
      subresource: 'token',
      parts: ['serviceaccounts', 'default', 'token'],
    }),
  },
  {
    name: 'log',
    method: 'GET',
    url: `${POD}/log?follow=true&container=app`,
    want: resource({
      path: `${POD}/log`,
      verb: 'get',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      subresource: 'log',
      parts: ['pods', 'web-0', 'log'],
    }),
  },
  {
    name: 'exec',
    method: 'POST',
    url: `${POD}/exec?command=ls&stdout=1`,
    want: resource({
      path: `${POD}/exec`,
      verb: 'create',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      subresource: 'exec',
      parts: ['pods', 'web-0', 'exec'],
    }),
  },
  {
    name: 'service proxy subresource keeps the rest of the path in parts',
    method: 'GET',
    url: '/api/v1/namespaces/default/services/https:web:443/proxy/metrics/x',
    want: resource({
      path: '/api/v1/namespaces/default/services/https:web:443/proxy/metrics/x',
      verb: 'get',
      namespace: 'default',
      resource: 'services',
      name: 'https:web:443',
      subresource: 'proxy',
      parts: ['services', 'https:web:443', 'proxy', 'metrics', 'x'],
    }),
  },
  {
    name: 'encoded slash in a proxy tail is passed through as Go splits it',
    method: 'GET',
    url: '/api/v1/namespaces/default/services/web/proxy/a%2Fb',
    want: resource({
      path: '/api/v1/namespaces/default/services/web/proxy/a/b',
      verb: 'get',
      namespace: 'default',
      resource: 'services',
      name: 'web',
      subresource: 'proxy',
      parts: ['services', 'web', 'proxy', 'a', 'b'],
    }),
  },
  {
    name: 'named group',
    method: 'GET',
    url: '/apis/apps/v1/namespaces/default/deployments/web',
    want: resource({
      path: '/apis/apps/v1/namespaces/default/deployments/web',
      verb: 'get',
      apiPrefix: 'apis',
      apiGroup: 'apps',
      namespace: 'default',
      resource: 'deployments',
      name: 'web',
      parts: ['deployments', 'web'],
    }),
  },
  {
    name: 'dotted group, node lease update',
    method: 'PUT',
    url: '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1',
    want: resource({
      path: '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1',
      verb: 'update',
      apiPrefix: 'apis',
      apiGroup: 'coordination.k8s.io',
      namespace: 'kube-node-lease',
      resource: 'leases',
      name: 'node-1',
      parts: ['leases', 'node-1'],
    }),
  },
  {
    name: 'cluster-scoped get',
    method: 'GET',
    url: '/api/v1/nodes/node-1',
    want: resource({
      path: '/api/v1/nodes/node-1',
      verb: 'get',
      resource: 'nodes',
      name: 'node-1',
      parts: ['nodes', 'node-1'],
    }),
  },
  {
    name: 'trailing slash is trimmed as splitPath does',
    method: 'GET',
    url: '/api/v1/pods/',
    want: resource({ path: '/api/v1/pods/', verb: 'list', resource: 'pods', parts: ['pods'] }),
  },
  {
    name: 'percent-encoded name is decoded once',
    method: 'GET',
    url: '/api/v1/namespaces/default/configmaps/my%2Dcm',
    want: resource({
      path: '/api/v1/namespaces/default/configmaps/my-cm',
      verb: 'get',
      namespace: 'default',
      resource: 'configmaps',
      name: 'my-cm',
      parts: ['configmaps', 'my-cm'],
    }),
  },
  {
    name: 'absolute-form request target',
    method: 'GET',
    url: 'https://10.0.0.1:6443/api/v1/pods?watch=1',
    want: resource({ path: '/api/v1/pods', verb: 'watch', resource: 'pods', parts: ['pods'] }),
  },

  // watch detection.
  {
    name: 'watch=true',
    method: 'GET',
    url: '/api/v1/pods?watch=true',
    want: resource({ path: '/api/v1/pods', verb: 'watch', resource: 'pods', parts: ['pods'] }),
  },
  {
    name: 'watch=1 with selectors',
    method: 'GET',
    url: '/api/v1/namespaces/default/pods?watch=1&labelSelector=app+in+(web)&resourceVersion=10',
    want: resource({
      path: '/api/v1/namespaces/default/pods',
      verb: 'watch',
      namespace: 'default',
      resource: 'pods',
      parts: ['pods'],
      labelSelector: 'app in (web)',
    }),
  },
  {
    name: 'watch=false is a list',
    method: 'GET',
    url: '/api/v1/pods?watch=false',
    want: resource({ path: '/api/v1/pods', verb: 'list', resource: 'pods', parts: ['pods'] }),
  },
  {
    name: 'watch=0 is a list',
    method: 'GET',
    url: '/api/v1/pods?watch=0',
    want: resource({ path: '/api/v1/pods', verb: 'list', resource: 'pods', parts: ['pods'] }),
  },
  {
    name: 'watch=FALSE is a list (EqualFold)',
    method: 'GET',
    url: '/api/v1/pods?watch=FALSE',
    want: resource({ path: '/api/v1/pods', verb: 'list', resource: 'pods', parts: ['pods'] }),
  },
  {
    name: 'an empty watch value is true',
    method: 'GET',
    url: '/api/v1/pods?watch=',
    want: resource({ path: '/api/v1/pods', verb: 'watch', resource: 'pods', parts: ['pods'] }),
  },
  {
    name: 'the first watch value wins',
    method: 'GET',
    url: '/api/v1/pods?watch=yes&watch=false',
    want: resource({ path: '/api/v1/pods', verb: 'watch', resource: 'pods', parts: ['pods'] }),
  },
  {
    name: 'garbage pairs in the query are dropped, the rest is read',
    method: 'GET',
    url: '/api/v1/pods?%zz=1&=&&watch=1&x=%G0',
    want: resource({ path: '/api/v1/pods', verb: 'watch', resource: 'pods', parts: ['pods'] }),
  },
  {
    name: 'a pair with a semicolon is dropped (Go 1.17+)',
    method: 'GET',
    url: '/api/v1/pods?watch=1;x=2',
    want: resource({ path: '/api/v1/pods', verb: 'list', resource: 'pods', parts: ['pods'] }),
  },
  {
    name: 'legacy /watch/ prefix, selectors not carried',
    method: 'GET',
    url: '/api/v1/watch/namespaces/default/pods?fieldSelector=spec.nodeName%3Dn1',
    want: resource({
      path: '/api/v1/watch/namespaces/default/pods',
      verb: 'watch',
      namespace: 'default',
      resource: 'pods',
      parts: ['pods'],
    }),
  },
  {
    name: 'legacy /watch/ prefix on one object',
    method: 'GET',
    url: '/api/v1/watch/namespaces/default/pods/web-0',
    want: resource({
      path: '/api/v1/watch/namespaces/default/pods/web-0',
      verb: 'watch',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      parts: ['pods', 'web-0'],
    }),
  },
  {
    name: 'legacy /watch/ prefix in a named group',
    method: 'GET',
    url: '/apis/apps/v1/watch/deployments',
    want: resource({
      path: '/apis/apps/v1/watch/deployments',
      verb: 'watch',
      apiPrefix: 'apis',
      apiGroup: 'apps',
      resource: 'deployments',
      parts: ['deployments'],
    }),
  },
  {
    name: 'legacy /proxy/ prefix: proxy verb, no subresource',
    method: 'GET',
    url: '/api/v1/proxy/namespaces/default/pods/web-0/metrics',
    want: resource({
      path: '/api/v1/proxy/namespaces/default/pods/web-0/metrics',
      verb: 'proxy',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      parts: ['pods', 'web-0', 'metrics'],
    }),
  },
  {
    name: 'legacy /proxy/ prefix on a node',
    method: 'POST',
    url: '/api/v1/proxy/nodes/node-1',
    want: resource({
      path: '/api/v1/proxy/nodes/node-1',
      verb: 'proxy',
      resource: 'nodes',
      name: 'node-1',
      parts: ['nodes', 'node-1'],
    }),
  },

  // fieldSelector=metadata.name=x pins a list/watch to a name.
  {
    name: 'list pinned by metadata.name',
    method: 'GET',
    url: '/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Dweb-0',
    want: resource({
      path: '/api/v1/namespaces/default/pods',
      verb: 'list',
      namespace: 'default',
      resource: 'pods',
      name: 'web-0',
      parts: ['pods'],
      fieldSelector: 'metadata.name=web-0',
    }),
  },
  {
    name: 'watch pinned by metadata.name==',
    method: 'GET',
    url: '/api/v1/nodes?fieldSelector=metadata.name%3D%3Dnode-1&watch=1&limit=500',
    want: resource({
      path: '/api/v1/nodes',
      verb: 'watch',
      resource: 'nodes',
      name: 'node-1',
      parts: ['nodes'],
      fieldSelector: 'metadata.name==node-1',
    }),
  },
  {
    name: 'metadata.name!= does not pin a name',
    method: 'GET',
    url: '/api/v1/nodes?fieldSelector=metadata.name!%3Dnode-1',
    want: resource({
      path: '/api/v1/nodes',
      verb: 'list',
      resource: 'nodes',
      parts: ['nodes'],
      fieldSelector: 'metadata.name!=node-1',
    }),
  },
  {
    name: 'a pinned name that is no valid path segment is ignored',
    method: 'GET',
    url: '/api/v1/nodes?fieldSelector=metadata.name%3Da%2Fb',
    want: resource({
      path: '/api/v1/nodes',
      verb: 'list',
      resource: 'nodes',
      parts: ['nodes'],
      fieldSelector: 'metadata.name=a/b',
    }),
  },
  {
    name: 'an unparsable field selector: no name, raw watch still read',
    method: 'GET',
    url: '/api/v1/nodes?fieldSelector=metadata.name&watch=true',
    want: resource({
      path: '/api/v1/nodes',
      verb: 'watch',
      resource: 'nodes',
      parts: ['nodes'],
      fieldSelector: 'metadata.name',
    }),
  },
  {
    name: 'an unparsable label selector drops the pinned name',
    method: 'GET',
    url: '/api/v1/nodes?fieldSelector=metadata.name%3Dn1&labelSelector=a%3D%3D%3D',
    want: resource({
      path: '/api/v1/nodes',
      verb: 'list',
      resource: 'nodes',
      parts: ['nodes'],
      fieldSelector: 'metadata.name=n1',
      labelSelector: 'a===',
    }),
  },
  {
    name: 'an unparsable limit drops the pinned name',
    method: 'GET',
    url: '/api/v1/nodes?fieldSelector=metadata.name%3Dn1&limit=ten',
    want: resource({
      path: '/api/v1/nodes',
      verb: 'list',
      resource: 'nodes',
      parts: ['nodes'],
      fieldSelector: 'metadata.name=n1',
    }),
  },

  // Long input is handled in one pass.
  {
    name: '10 KB name',
    method: 'GET',
    url: `/api/v1/namespaces/default/configmaps/${longName}`,
    want: resource({
      path: `/api/v1/namespaces/default/configmaps/${longName}`,
      verb: 'get',
      namespace: 'default',
      resource: 'configmaps',
      name: longName,
      parts: ['configmaps', longName],
    }),
  },
  {
    name: '10 KB proxy path',
    method: 'GET',
    url: `/api/v1/namespaces/default/services/web/proxy/${longProxyTail}`,
    want: resource({
      path: `/api/v1/namespaces/default/services/web/proxy/${longProxyTail}`,
      verb: 'get',
      namespace: 'default',
      resource: 'services',
      name: 'web',
      subresource: 'proxy',
      parts: ['services', 'web', 'proxy', ...Array.from({ length: 5_000 }, () => 'a')],
    }),
  },
];

interface ErrorCase {
  name: string;
  method: string;
  url: string;
  code: number;
  message: string;
}

const errorCases: ErrorCase[] = [
  {
    name: 'watch prefix without a resource (Go fails RequestInfo: 500)',
    method: 'GET',
    url: '/api/v1/watch',
    code: 500,
    message:
      'failed to create RequestInfo: unable to determine kind and namespace from url, /api/v1/watch',
  },
  {
    name: 'proxy prefix without a resource',
    method: 'GET',
    url: '/apis/apps/v1/proxy?x=1',
    code: 500,
    message:
      'failed to create RequestInfo: unable to determine kind and namespace from url, /apis/apps/v1/proxy?x=1',
  },
  {
    name: '.. segment',
    method: 'GET',
    url: '/api/v1/namespaces/default/pods/../secrets',
    code: 400,
    message:
      'invalid request path "/api/v1/namespaces/default/pods/../secrets": "." and ".." segments are not allowed',
  },
  {
    name: 'percent-encoded .. segment',
    method: 'GET',
    url: '/api/v1/namespaces/default/pods/%2e%2e/secrets',
    code: 400,
    message:
      'invalid request path "/api/v1/namespaces/default/pods/%2e%2e/secrets": "." and ".." segments are not allowed',
  },
  {
    name: '.. hidden behind an encoded slash',
    method: 'GET',
    url: '/api/v1/namespaces/default/pods/x%2F..%2Fsecrets',
    code: 400,
    message:
      'invalid request path "/api/v1/namespaces/default/pods/x%2F..%2Fsecrets": "." and ".." segments are not allowed',
  },
  {
    name: '. segment',
    method: 'GET',
    url: '/api/./v1/pods',
    code: 400,
    message: 'invalid request path "/api/./v1/pods": "." and ".." segments are not allowed',
  },
  {
    name: '.. in a non-resource path',
    method: 'GET',
    url: '/healthz/../api/v1/secrets',
    code: 400,
    message:
      'invalid request path "/healthz/../api/v1/secrets": "." and ".." segments are not allowed',
  },
  {
    name: 'empty segment',
    method: 'GET',
    url: '/api/v1//pods',
    code: 400,
    message: 'invalid request path "/api/v1//pods": empty path segments ("//") are not allowed',
  },
  {
    name: 'leading double slash',
    method: 'GET',
    url: '//api/v1/pods',
    code: 400,
    message: 'invalid request path "//api/v1/pods": empty path segments ("//") are not allowed',
  },
  {
    name: 'encoded slash inside a name',
    method: 'GET',
    url: '/api/v1/namespaces/default/pods/a%2Fb',
    code: 400,
    message:
      'invalid request path "/api/v1/namespaces/default/pods/a%2Fb": an encoded \'/\' (%2F) is not allowed in the namespace, resource, name or subresource',
  },
  {
    name: 'encoded slash inside a namespace',
    method: 'GET',
    url: '/api/v1/namespaces/kube%2fsystem/pods',
    code: 400,
    message:
      'invalid request path "/api/v1/namespaces/kube%2fsystem/pods": an encoded \'/\' (%2F) is not allowed in the namespace, resource, name or subresource',
  },
  {
    name: 'encoded slash glued to the subresource',
    method: 'GET',
    url: '/api/v1/namespaces/default/services/web/proxy%2Fx',
    code: 400,
    message:
      'invalid request path "/api/v1/namespaces/default/services/web/proxy%2Fx": an encoded \'/\' (%2F) is not allowed in the namespace, resource, name or subresource',
  },
  {
    name: 'invalid percent-encoding',
    method: 'GET',
    url: '/api/v1/pods/%zz',
    code: 400,
    message: 'parse "/api/v1/pods/%zz": invalid URL escape "%zz"',
  },
  {
    name: 'truncated percent-encoding',
    method: 'GET',
    url: '/api/v1/pods/abc%4',
    code: 400,
    message: 'parse "/api/v1/pods/abc%4": invalid URL escape "%4"',
  },
  {
    name: 'percent-encoded bytes that are not UTF-8',
    method: 'GET',
    url: '/api/v1/namespaces/default/pods/%ff',
    code: 400,
    message:
      'parse "/api/v1/namespaces/default/pods/%ff": percent-encoded bytes are not valid UTF-8',
  },
  {
    name: 'control character',
    method: 'GET',
    url: '/api/v1/pods\n',
    code: 400,
    message: 'net/url: invalid control character in URL',
  },
  {
    name: 'raw non-ASCII in the path',
    method: 'GET',
    url: '/api/v1/namespaces/default/pods/caf\u00e9',
    code: 400,
    message:
      'invalid request path "/api/v1/namespaces/default/pods/café": non-ASCII characters must be percent-encoded',
  },
  {
    name: 'a name with % (registry refuses it)',
    method: 'GET',
    url: '/api/v1/namespaces/default/pods/a%25b',
    code: 400,
    message: 'Name parameter invalid: "a%b": may not contain \'%\'',
  },
  {
    name: 'relative request target',
    method: 'GET',
    url: 'api/v1/pods',
    code: 400,
    message: 'parse "api/v1/pods": invalid URI for request',
  },
];

describe('parseRequestInfo', () => {
  it.each(okCases)('$name', ({ method, url, want }) => {
    const got = parseRequestInfo(method, url);
    expect(got).not.toBeInstanceOf(RequestInfoError);
    expect(got).toEqual(want);
  });

  it.each(errorCases)('refuses: $name', ({ method, url, code, message }) => {
    const got = parseRequestInfo(method, url);
    expect(got).toBeInstanceOf(RequestInfoError);
    const err = got as RequestInfoError;
    expect(err.code).toBe(code);
    expect(err.message).toBe(message);
  });

  it('shortens a very long URL in messages', () => {
    const got = parseRequestInfo('GET', `/api/v1/pods/%zz${'y'.repeat(10_000)}`);
    expect(got).toBeInstanceOf(RequestInfoError);
    expect((got as RequestInfoError).message.length).toBeLessThan(400);
  });
});

describe('requestInfoErrorStatus', () => {
  it('answers 400 refusals with BadRequest', () => {
    const status = requestInfoErrorStatus(new RequestInfoError('bad path'));
    expect(status).toMatchObject({ code: 400, reason: 'BadRequest', message: 'bad path' });
  });

  it('answers RequestInfo failures with InternalError, as the apiserver does', () => {
    const got = parseRequestInfo('GET', '/api/v1/watch');
    expect(got).toBeInstanceOf(RequestInfoError);
    expect(requestInfoErrorStatus(got as RequestInfoError)).toMatchObject({
      code: 500,
      reason: 'InternalError',
      message:
        'Internal error occurred: failed to create RequestInfo: unable to determine kind and namespace from url, /api/v1/watch',
    });
  });
});
