/**
 * Child process for the kill -9 test (crash-safety.test.ts): ingests list
 * replacements and watch-event batches into a real store as fast as it can
 * until it is killed. Each operation has an invariant the parent checks after
 * reopening: namespace `l` always holds exactly one generation's list, and the
 * five counters in namespace `w` always hold one common value. Every other
 * list is staged item by item (CacheStore.stageList) and applied in batches
 * of a pod or two, so kills land inside a staged replacement too.
 */
import { silentLogger } from '../../src/log.ts';
import { CacheStore } from './cache-store.ts';
import { prepareObject } from './prepared-object.ts';
import { compileScope } from './scope.ts';
import { COUNTERS, STORM_PODS, generationNames } from './crash-storm-plan.ts';

function obj(namespace: string, name: string, rv: number, labels: Record<string, string>) {
  const prepared = prepareObject(
    STORM_PODS,
    {
      metadata: { name, namespace, resourceVersion: String(rv), labels },
      spec: { nodeName: 'node-a' },
      pad: 'x'.repeat(2000),
    },
    { kind: 'Pod', apiVersion: 'v1' },
  );
  if (prepared instanceof Error) throw prepared;
  return prepared;
}

async function main(dataDir: string): Promise<void> {
  const store = await CacheStore.open({ dataDir, log: silentLogger(), stagedChunkBytes: 4096 });
  const listScope = compileScope(STORM_PODS, 'l', '', '');
  const watchScope = compileScope(STORM_PODS, 'w', '', '');
  if (listScope instanceof Error || watchScope instanceof Error) throw new Error('bad scope');
  let rv = Number(store.maxResourceVersion() || '0') + 1;
  let g = rv;
  let announced = false;
  for (;;) {
    const pending: Promise<void>[] = [];
    g += 1;
    rv += 1;
    const listRv = rv;
    const items = generationNames(g).map((n) => obj('l', n, listRv, { gen: String(g) }));
    const replacement = { scope: listScope, rv: String(listRv), kind: 'Pod' };
    if (g % 2 === 0) {
      pending.push(store.replaceList('kubelet', STORM_PODS, { ...replacement, items }));
    } else {
      const staging = store.stageList();
      for (const item of items) staging.add(item);
      pending.push(store.replaceStagedList('kubelet', STORM_PODS, staging, replacement));
    }
    for (let burst = 0; burst < 3; burst++) {
      rv += 1;
      const value = String(rv);
      const events = Array.from({ length: COUNTERS }, (_, i) => ({
        type: 'MODIFIED' as const,
        rv: value,
        object: obj('w', `c${i}`, rv, { value }),
      }));
      pending.push(store.applyWatchEvents('kubelet', STORM_PODS, watchScope, events, 'Pod'));
    }
    await Promise.all(pending);
    if (!announced) {
      process.stdout.write('ready\n');
      announced = true;
    }
  }
}

const dataDir = process.argv[2];
if (dataDir === undefined) {
  process.stderr.write('usage: crash-storm-child.ts <dataDir>\n');
  process.exit(2);
}
await main(dataDir);
