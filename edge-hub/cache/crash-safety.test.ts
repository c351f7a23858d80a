import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, silentLogger } from '../../src/log.ts';
import { CacheStore } from './cache-store.ts';
import { COUNTERS, STORM_PODS, generationNames } from './crash-storm-plan.ts';
import { splitObjectId } from './keys.ts';
import { tempDataDir } from './recording-fixtures.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const CHILD = join(here, 'crash-storm-child.ts');
const KILLS = 20;

/** Node 24 runs the TypeScript child directly; the repo pins it as a dev dependency. */
function node24(): { command: string; args: string[] } {
  const local = join(repo, 'node_modules', '.bin', 'node');
  return existsSync(local) ? { command: local, args: [] } : { command: 'npx', args: ['node'] };
}

/** Starts the child, waits until it has committed at least once, lets it run, then SIGKILLs it. */
async function stormAndKill(dataDir: string, runMs: number): Promise<void> {
  const { command, args } = node24();
  const child = spawn(command, [...args, CHILD, dataDir], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) resolve();
    });
    child.on('exit', (code) =>
      reject(new Error(`storm child exited (${code}) before ready: ${stderr}`)),
    );
  });
  await new Promise<void>((resolve) => {
    // Kill at a random moment after the first commit: the child never stops writing.
    const timer = setTimeout(resolve, runMs);
    timer.unref();
  });
  child.kill('SIGKILL');
  await exited;
}

async function checkInvariants(dataDir: string): Promise<{ generation: number; counter: string }> {
  const store = await CacheStore.open({ dataDir, log: silentLogger() });
  try {
    const entry = store.entry('kubelet', STORM_PODS);
    if (entry === undefined) throw new Error('nothing was committed');
    const state = await store.stateOf(entry);
    const listScope = [...entry.scopes.values()].find((s) => s.scope.def.namespace === 'l');
    expect(listScope?.complete).toBe(true);
    const inList: string[] = [];
    const counters: string[] = [];
    let generation = -1;
    for (const [id, meta] of state.meta) {
      const raw = store.readObject('kubelet', STORM_PODS, id);
      expect(raw, `object ${id} has meta but no body`).toBeDefined();
      const obj = JSON.parse(raw?.toString() ?? '{}') as {
        metadata: { resourceVersion: string; labels: Record<string, string> };
      };
      expect(obj.metadata.resourceVersion).toBe(meta.rv);
      const { namespace, name } = splitObjectId(id);
      if (namespace === 'l') {
        inList.push(name);
        const g = Number(obj.metadata.labels.gen);
        if (generation === -1) generation = g;
        expect(g, 'every listed object is of one generation').toBe(generation);
      } else {
        counters.push(obj.metadata.labels.value ?? '');
      }
    }
    expect(inList.sort()).toEqual([...new Set(generationNames(generation))].sort());
    expect(String(listScope?.rv)).toBe(
      String(
        Number(
          JSON.parse(
            store
              .readObject(
                'kubelet',
                STORM_PODS,
                [...state.meta.keys()].find((k) => k.startsWith('l/')) ?? '',
              )
              ?.toString() ?? '{"metadata":{}}',
          ).metadata.resourceVersion,
        ),
      ),
    );
    expect(counters).toHaveLength(COUNTERS);
    expect(
      new Set(counters).size,
      `counters of one watch batch diverged: ${counters.join(',')}`,
    ).toBe(1);
    for (const [scopeId, members] of state.members) {
      for (const id of members)
        expect(state.meta.has(id), `member ${id} of ${scopeId} has no object`).toBe(true);
    }
    return { generation, counter: counters[0] ?? '' };
  } finally {
    await store.close();
  }
}

describe('crash safety', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDataDir();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(`keeps every scope old-or-new across ${KILLS} kill -9 during a write storm`, async () => {
    const dataDir = join(dir, 'hub');
    let last = { generation: -1, counter: '' };
    for (let i = 0; i < KILLS; i++) {
      await stormAndKill(dataDir, 30 + Math.floor(Math.random() * 300));
      const now = await checkInvariants(dataDir);
      // Progress is durable: a reopened store never goes back in time.
      expect(now.generation).toBeGreaterThan(last.generation);
      last = now;
    }
    // The storm really stormed: many list generations per run, not one.
    expect(last.generation).toBeGreaterThan(KILLS * 5);
    const siblings = await readdir(dir);
    expect(siblings.filter((n) => n.includes('.corrupt-'))).toEqual([]);
  }, 240_000);
});

describe('unusable store', () => {
  it('moves a corrupt store aside with a loud log naming both paths, and starts fresh', async () => {
    const base = await tempDataDir();
    const dataDir = join(base, 'hub');
    await mkdir(dataDir, { recursive: true });
    await writeFile(join(dataDir, 'CURRENT'), 'MANIFEST-000099\n');
    await writeFile(join(dataDir, 'MANIFEST-000099'), 'this is not a manifest');
    const lines: string[] = [];
    const log = createLogger({
      name: 'test',
      destination: { write: (s: string) => lines.push(s) },
    });
    const store = await CacheStore.open({
      dataDir,
      log,
      clock: () => Date.parse('2024-05-01T10:00:00Z'),
    });
    await store.close();
    const aside = `${dataDir}.corrupt-2024-05-01T10-00-00-000Z`;
    expect(existsSync(join(aside, 'MANIFEST-000099'))).toBe(true);
    const record = JSON.parse(lines.find((l) => l.includes('corrupt')) ?? '{}') as Record<
      string,
      unknown
    >;
    expect(record.level).toBe(50);
    expect(record.dataDir).toBe(dataDir);
    expect(record.movedTo).toBe(aside);
    // The fresh store works.
    const again = await CacheStore.open({ dataDir, log: silentLogger() });
    await again.close();
    await rm(base, { recursive: true, force: true });
  });

  it('refuses, without moving anything, a store another process holds open', async () => {
    const base = await tempDataDir();
    const dataDir = join(base, 'hub');
    const first = await CacheStore.open({ dataDir, log: silentLogger() });
    await expect(CacheStore.open({ dataDir, log: silentLogger() })).rejects.toThrow(/locked/);
    await first.close();
    expect((await readdir(base)).filter((n) => n.includes('.corrupt-'))).toEqual([]);
    await rm(base, { recursive: true, force: true });
  });
});
