import { createHash } from 'node:crypto';
import type { JsonObject } from './object-meta.ts';
import type { ResourceTable, ResourceType } from './resource-types.ts';

/**
 * A minimal OpenAPI v3 (/openapi/v3 and /openapi/v3/<api|apis/group>/<version>):
 * one path per resource with the operations and the `fieldValidation` query
 * parameter declared, and no schemas. That is what kubectl reads before
 * create/apply to learn that the server validates fields itself; without it
 * kubectl refuses to send objects unless --validate=false. With no schemas,
 * `kubectl apply` computes its patches from its compiled-in types (built-in
 * kinds) or JSON merge patch (custom resources), as it does for any server
 * whose OpenAPI lacks a kind. /openapi/v2 is 404.
 */

function gvPath(group: string, version: string): string {
  return group === '' ? `api/${version}` : `apis/${group}/${version}`;
}

function itemPath(t: ResourceType): string {
  const base = `/${gvPath(t.group, t.version)}`;
  return t.namespaced
    ? `${base}/namespaces/{namespace}/${t.resource}/{name}`
    : `${base}/${t.resource}/{name}`;
}

function operation(t: ResourceType, action: string, extraParams: JsonObject[] = []): JsonObject {
  return {
    operationId: `${action}${t.kind}`,
    parameters: extraParams,
    responses: { '200': { description: 'OK' } },
    'x-kubernetes-action': action,
    'x-kubernetes-group-version-kind': { group: t.group, version: t.version, kind: t.kind },
  };
}

const QUERY = (name: string): JsonObject => ({
  name,
  in: 'query',
  schema: { type: 'string', uniqueItems: true },
});

export function openApiV3Document(
  table: ResourceTable,
  group: string,
  version: string,
): JsonObject | undefined {
  const types = table.inGroupVersion(group, version);
  if (types.length === 0) return undefined;
  const paths: JsonObject = {};
  for (const t of types) {
    paths[itemPath(t)] = {
      get: operation(t, 'get'),
      put: operation(t, 'put', [QUERY('dryRun'), QUERY('fieldManager'), QUERY('fieldValidation')]),
      patch: operation(t, 'patch', [
        QUERY('dryRun'),
        QUERY('fieldManager'),
        QUERY('fieldValidation'),
        QUERY('force'),
      ]),
      delete: operation(t, 'delete'),
    };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.32.0' },
    paths,
    components: {},
  };
}

export function openApiV3Root(table: ResourceTable): JsonObject {
  const paths: JsonObject = {};
  for (const g of table.groups()) {
    for (const v of g.versions) {
      const key = gvPath(g.name, v);
      const doc = JSON.stringify(openApiV3Document(table, g.name, v));
      const hash = createHash('sha512').update(doc).digest('hex').slice(0, 128).toUpperCase();
      paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${hash}` };
    }
  }
  return { paths };
}
