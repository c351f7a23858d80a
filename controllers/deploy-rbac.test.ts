import { kubectlBinary } from '../test/support/kubectl.ts';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { loadConfig } from '../src/config/load.ts';
import { parseRequestInfo, RequestInfoError } from '../src/kube/request-info.ts';
import { EcmConfigSchema, defaultEcmConfig, type EcmConfig } from './config.ts';
import { findCondition } from './kube/objects.ts';
import { apiClusterPerTest, type ApiCluster } from './testing/api-cluster.ts';
import { observe } from './testing/ecm-observer.ts';

/*
 * deploy/ecm, as `kubectl apply -k` applies it (rendered by the real
 * kubectl's kustomize), grants the ECM exactly what it uses: every request
 * an ECM makes in a run that exercises all of its writes is allowed by the
 * RBAC objects (evaluated as kube-apiserver's RBAC authorizer does), and
 * every permission granted is used by that run.
 */

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const DEPLOY = fileURLToPath(new URL('../deploy/ecm', import.meta.url));

const RuleSchema = z.object({
  apiGroups: z.array(z.string()),
  resources: z.array(z.string()),
  verbs: z.array(z.string()),
  resourceNames: z.array(z.string()).optional(),
});
type Rule = z.infer<typeof RuleSchema>;

const ManifestSchema = z.object({
  kind: z.string(),
  metadata: z.object({ name: z.string(), namespace: z.string().optional() }),
  rules: z.array(RuleSchema).optional(),
  roleRef: z.object({ kind: z.string(), name: z.string() }).optional(),
  subjects: z
    .array(z.object({ kind: z.string(), name: z.string(), namespace: z.string().optional() }))
    .optional(),
  spec: z.unknown().optional(),
});
type Manifest = z.infer<typeof ManifestSchema>;

const DeploymentSpecSchema = z.object({
  template: z.object({
    spec: z.object({
      serviceAccountName: z.string(),
      containers: z.array(z.object({ command: z.array(z.string()), args: z.array(z.string()) })),
    }),
  }),
});

/**
 * The objects `kubectl apply -k` creates: deploy/ecm as it is, or (with the
 * component) as a kustomization of the reader's own that adds
 * deploy/ecm/cooperative, as the README says to use it.
 */
function manifests(mode: 'standalone' | 'cooperative'): Manifest[] {
  let root = DEPLOY;
  let scratch: string | undefined;
  if (mode === 'cooperative') {
    scratch = mkdtempSync(join(tmpdir(), 'ecm-kustomize-'));
    // kustomize wants the paths relative to the kustomization.
    const base = relative(scratch, DEPLOY);
    writeFileSync(
      join(scratch, 'kustomization.yaml'),
      `resources: [${base}]\ncomponents: [${join(base, 'cooperative')}]\n`,
    );
    root = scratch;
  }
  try {
    const rendered = execFileSync(kubectlBinary(), ['kustomize', root], { encoding: 'utf8' });
    return parseAllDocuments(rendered).map((d) => ManifestSchema.parse(d.toJS()));
  } finally {
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  }
}

/** The ECM configuration the Deployment's container runs with. */
function deployedConfig(all: Manifest[]): EcmConfig {
  const deployment = all.find((m) => m.kind === 'Deployment');
  const container = DeploymentSpecSchema.parse(deployment?.spec).template.spec.containers[0];
  expect(container?.command).toEqual(['edgebox', 'ecm']);
  const flags: Record<string, string> = {};
  for (const arg of container?.args ?? []) {
    const m = /^--([a-z-]+)=(.*)$/.exec(arg);
    if (m === null) throw new Error(`container argument ${arg} is not --flag=value`);
    flags[(m[1] ?? '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = m[2] ?? '';
  }
  const unknown = Object.keys(flags).filter((k) => !(k in EcmConfigSchema.shape));
  expect(unknown).toEqual([]);
  return loadConfig(EcmConfigSchema, { flags });
}

interface Grant {
  /** '' for a ClusterRole, else the Role's namespace. */
  namespace: string;
  role: string;
  rule: Rule;
}

/** The rules bound to the ECM's ServiceAccount, by ClusterRoleBinding or RoleBinding. */
function grantsOf(all: Manifest[]): { grants: Grant[]; namespace: string } {
  const deployment = all.find((m) => m.kind === 'Deployment');
  const namespace = deployment?.metadata.namespace ?? '';
  const serviceAccount = DeploymentSpecSchema.parse(deployment?.spec).template.spec
    .serviceAccountName;
  const grants: Grant[] = [];
  for (const binding of all.filter((m) => m.kind.endsWith('Binding'))) {
    const bound = binding.subjects?.some(
      (s) => s.kind === 'ServiceAccount' && s.name === serviceAccount && s.namespace === namespace,
    );
    if (bound !== true || binding.roleRef === undefined) continue;
    const role = all.find(
      (m) =>
        m.kind === binding.roleRef?.kind &&
        m.metadata.name === binding.roleRef.name &&
        (m.kind === 'ClusterRole' || m.metadata.namespace === binding.metadata.namespace),
    );
    for (const rule of role?.rules ?? []) {
      grants.push({
        namespace: role?.kind === 'ClusterRole' ? '' : (binding.metadata.namespace ?? ''),
        role: `${role?.kind ?? '?'} ${role?.metadata.name ?? '?'}`,
        rule,
      });
    }
  }
  return { grants, namespace };
}

interface Access {
  verb: string;
  group: string;
  resource: string;
  namespace: string;
  name: string;
}

function grantAllows(g: Grant, a: Access): boolean {
  if (g.namespace !== '' && g.namespace !== a.namespace) return false;
  const { apiGroups, resources, verbs, resourceNames } = g.rule;
  return (
    (apiGroups.includes(a.group) || apiGroups.includes('*')) &&
    (resources.includes(a.resource) || resources.includes('*')) &&
    (verbs.includes(a.verb) || verbs.includes('*')) &&
    (resourceNames === undefined || resourceNames.length === 0 || resourceNames.includes(a.name))
  );
}

/**
 * What each request needed, as RBAC sees it. The ECM is the apiserver's only
 * HTTP client in these tests (the harness writes to its store directly), and
 * client-node's watches do not carry the ECM's User-Agent, so every request counts.
 */
function accessesOf(cluster: ApiCluster): Access[] {
  return cluster.api.requests.map((r) => {
    const info = parseRequestInfo(r.method, r.url);
    if (info instanceof RequestInfoError || !info.isResourceRequest) {
      throw new Error(`not a resource request: ${r.method} ${r.url}`);
    }
    return {
      verb: info.verb,
      group: info.apiGroup,
      resource: info.subresource === '' ? info.resource : `${info.resource}/${info.subresource}`,
      namespace: info.namespace,
      name: info.name,
    };
  });
}

function describeAccess(a: Access): string {
  return `${a.verb} ${a.group === '' ? '' : `${a.group}/`}${a.resource}${a.namespace === '' ? '' : ` in ${a.namespace}`}`;
}

/** Every request allowed; every granted verb on every granted resource used. */
function checkLeastPrivilege(grants: Grant[], accesses: Access[]): void {
  const denied = accesses.filter((a) => !grants.some((g) => grantAllows(g, a)));
  expect(denied.map(describeAccess)).toEqual([]);
  const unused: string[] = [];
  for (const g of grants) {
    for (const resource of g.rule.resources) {
      for (const verb of g.rule.verbs) {
        const used = accesses.some(
          (a) =>
            a.resource === resource &&
            a.verb === verb &&
            g.rule.apiGroups.includes(a.group) &&
            grantAllows(g, a),
        );
        if (!used) unused.push(`${g.role}: ${verb} ${resource}`);
      }
    }
  }
  expect(unused).toEqual([]);
}

const newCluster = apiClusterPerTest();

/**
 * What deploy/ecm grants in a mode, how its Deployment configures the ECM,
 * and a cluster with the namespaces the run needs.
 */
async function deployed(mode: EcmConfig['mode']) {
  const all = manifests(mode);
  const { grants, namespace } = grantsOf(all);
  const config = deployedConfig(all);
  expect(config.mode).toBe(mode);
  const c = await newCluster();
  for (const name of [namespace, 'team']) c.api.store.create('namespaces', { metadata: { name } });
  // The leader Lease lives in the pod's own namespace, as the Deployment runs it.
  return { grants, c, config: { ...config, leaderElectNamespace: namespace } };
}

describe('deploy/ecm RBAC', () => {
  it('grants standalone mode what it uses and nothing more', async () => {
    const { grants, c, config } = await deployed('standalone');
    c.addNode('plain', { zone: 'a' });
    c.addNode('healthy', { zone: 'b', labels: { 'kubernetes.io/arch': 'arm64' } });
    c.addNode('edge', { zone: 'b', annotations: { 'edgebox.io/autonomy': 'true' } });
    c.addNode('typo', { zone: 'b', annotations: { 'edgebox.io/autonomy': 'yes' } });
    c.addPod('quick', 'plain', { namespace: 'team', tolerationSeconds: 0 });
    const ecm = c.createEcm('ecm-rbac', config);
    const seen = observe(ecm.cache, c.clock);
    await c.startEcm(ecm);
    await c.advance(MINUTE);
    // A conflict on the first status write makes the controller read the node afresh.
    c.api.faults.failWith(
      409,
      1,
      (r) => r.method === 'PATCH' && r.path === '/api/v1/nodes/plain/status',
    );
    c.partition('plain');
    await c.advanceUntil(() => seen.evictedAt.has('team/quick'), 5 * MINUTE);
    expect(findCondition(ecm.cache.node('edge')?.status.conditions, 'EdgeAutonomy')).toBeDefined();
    await c.stopEcm(ecm, { release: true });

    checkLeastPrivilege(grants, accessesOf(c));
  });

  it('grants cooperative mode (with its component) what it uses and nothing more', async () => {
    const { grants, c, config } = await deployed('cooperative');
    c.addNode('edge', { zone: 'b', annotations: { 'edgebox.io/autonomy-duration': '1h' } });
    c.addNode('typo', { zone: 'b', annotations: { 'edgebox.io/autonomy': 'yes' } });
    c.addPod('web', 'edge', { namespace: 'team' });
    const ecm = c.createEcm('ecm-coop-rbac', config);
    await c.startEcm(ecm);
    await c.advance(10 * SECOND);
    const web = c.pod('web', 'team') as { metadata: { annotations?: Record<string, string> } };
    expect(web.metadata.annotations?.['edgebox.io/original-tolerations']).toBeDefined();
    await c.stopEcm(ecm, { release: true });

    checkLeastPrivilege(grants, accessesOf(c));
  });

  it('binds the roles to the ServiceAccount the Deployment runs as, in its namespace', () => {
    const all = manifests('standalone');
    const { grants, namespace } = grantsOf(all);
    expect(namespace).toBe('edgebox-system');
    expect(all.some((m) => m.kind === 'Namespace' && m.metadata.name === namespace)).toBe(true);
    // Node heartbeats are read only in kube-node-lease; the leader Lease only by its name.
    expect(
      grants
        .filter((g) => g.rule.resources.includes('leases'))
        .map((g) => g.namespace)
        .sort(),
    ).toEqual([namespace, namespace, 'kube-node-lease']);
    expect(grants.find((g) => g.rule.resourceNames !== undefined)?.rule.resourceNames).toEqual([
      defaultEcmConfig().leaderElectName,
    ]);
  });
});
