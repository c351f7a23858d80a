import { isMap, isSeq, parseDocument, type Document, type YAMLMap } from 'yaml';
import { z } from 'zod';
import { NodeFileError } from './config-error.ts';

/** The cluster entry `edgebox node enable` adds for the hub; the original cluster entry stays. */
export const HUB_CLUSTER_NAME = 'edgebox-hub';

const kubeconfigSchema = z.object({
  'current-context': z.string().min(1, 'has no current-context'),
  contexts: z.array(
    z.object({ name: z.string(), context: z.object({ cluster: z.string().min(1) }) }),
  ),
  clusters: z.array(z.object({ name: z.string(), cluster: z.object({ server: z.string() }) })),
});

export interface KubeconfigChange {
  text: string;
  /** One line for the operator: which context now goes where. */
  summary: string;
}

function parse(file: string, text: string): Document.Parsed {
  const doc = parseDocument(text);
  const error = doc.errors[0];
  if (error) {
    const pos = error.linePos?.[0];
    throw new NodeFileError(
      file,
      `not valid YAML (${error.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '')})`,
      pos && { line: pos.line, column: pos.col },
    );
  }
  return doc;
}

/**
 * Points the kubeconfig's current context at the hub: a cluster entry
 * `edgebox-hub` with the hub's URL (plain HTTP on loopback: the hub talks to
 * the apiserver with the original file's credentials) and the context's
 * cluster set to it. Everything else (users, other clusters and contexts,
 * comments) is left as it was, so the file still says where the apiserver is.
 */
export function pointKubeconfigAtHub(file: string, text: string, hubUrl: string): KubeconfigChange {
  const doc = parse(file, text);
  const checked = kubeconfigSchema.safeParse(doc.toJS());
  if (!checked.success) {
    const issue = checked.error.issues[0];
    throw new NodeFileError(
      file,
      `not a kubeconfig kubelet can use (${issue ? `${issue.path.join('.') || 'document'}: ${issue.message}` : 'invalid'})`,
    );
  }
  const config = checked.data;
  const contextIndex = config.contexts.findIndex((c) => c.name === config['current-context']);
  const context = config.contexts[contextIndex];
  if (!context) {
    throw new NodeFileError(
      file,
      `current-context "${config['current-context']}" is not among its contexts`,
    );
  }
  const from = config.clusters.find((c) => c.name === context.context.cluster);
  const fromText = from ? `${from.name} (${from.cluster.server})` : context.context.cluster;
  const clusters = doc.get('clusters');
  if (!isSeq(clusters)) throw new NodeFileError(file, 'clusters is not a list');
  const hubEntry = clusters.items.find(
    (item): item is YAMLMap => isMap(item) && item.get('name') === HUB_CLUSTER_NAME,
  );
  if (hubEntry) {
    hubEntry.setIn(['cluster', 'server'], hubUrl);
  } else {
    clusters.add(doc.createNode({ name: HUB_CLUSTER_NAME, cluster: { server: hubUrl } }));
  }
  doc.setIn(['contexts', contextIndex, 'context', 'cluster'], HUB_CLUSTER_NAME);
  return {
    text: doc.toString(),
    summary: `context ${context.name}: cluster ${fromText} -> ${HUB_CLUSTER_NAME} (${hubUrl})`,
  };
}
