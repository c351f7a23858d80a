import { existsSync } from 'node:fs';
import Table from 'cli-table3';
import { silentLogger } from '../src/log.ts';
import type { CacheSummaryRow } from './cache/cache-manager.ts';
import type { CacheLoss } from './cache/store-records.ts';
import { formatHostPort, type HostPort, type HubOptions } from './config.ts';
import { hubStatusSchema, type HubStatus } from './hub-status.ts';
import { createReadyzProbe } from './upstream/readyz-probe.ts';
import { buildUpstreams, destroyUpstreams } from './upstream/upstream.ts';

/** What `edgebox hub status` shows, from a running hub or from the store and a probe of its own. */
export interface StatusView {
  source: 'running hub' | 'store';
  nodeName: string | null;
  cache: CacheSummaryRow[];
  cacheLost: CacheLoss | null;
  upstreams: Array<{ name: string; state: string; detail: string }>;
}

/** What the store itself says: its contents, and whether it replaced a lost one. */
export interface StoreReading {
  cache: CacheSummaryRow[];
  cacheLost: CacheLoss | null;
}

export interface StatusDeps {
  fetchRunning(url: string, timeoutMs: number): Promise<unknown>;
  readStore(dataDir: string): Promise<StoreReading>;
  probeUpstreams(options: HubOptions): Promise<StatusView['upstreams']>;
  now(): number;
}

function localAddress(hp: HostPort): HostPort {
  // A hub listening on every address is reached on loopback.
  if (hp.host === '0.0.0.0') return { ...hp, host: '127.0.0.1' };
  if (hp.host === '::') return { ...hp, host: '::1' };
  return hp;
}

async function fetchJson(url: string, timeoutMs: number): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  return res.json();
}

async function readStore(dataDir: string): Promise<StoreReading> {
  // Opening would create an empty store; a node that never ran a hub has nothing cached.
  if (!existsSync(dataDir)) return { cache: [], cacheLost: null };
  const { CacheManager } = await import('./cache/cache-manager.ts');
  const cache = await CacheManager.open({ dataDir, log: silentLogger() });
  try {
    return { cache: await cache.summary(), cacheLost: cache.loss() ?? null };
  } finally {
    await cache.close();
  }
}

async function probeUpstreams(options: HubOptions): Promise<StatusView['upstreams']> {
  if (options.server.length === 0 && options.upstreamKubeconfig === undefined) return [];
  const upstreams = await buildUpstreams(options);
  try {
    const probe = createReadyzProbe();
    return await Promise.all(
      upstreams.map(async (u) => {
        const r = await probe(u, options.healthTimeout);
        return r.ok
          ? { name: u.name, state: 'reachable', detail: 'probed just now' }
          : { name: u.name, state: 'unreachable', detail: r.reason };
      }),
    );
  } finally {
    destroyUpstreams(upstreams);
  }
}

export const defaultStatusDeps: StatusDeps = {
  fetchRunning: fetchJson,
  readStore,
  probeUpstreams,
  now: Date.now,
};

function fromRunning(status: HubStatus): StatusView {
  return {
    source: 'running hub',
    nodeName: status.nodeName,
    cache: status.cache,
    cacheLost: status.cacheLost,
    upstreams: status.upstream.servers.map((s) => ({
      name: s.name,
      state: s.state === 'up' ? 'reachable' : s.state === 'down' ? 'unreachable' : 'unknown',
      detail:
        s.state === 'down' && s.lastError !== null
          ? `since ${s.since}: ${s.lastError}`
          : `since ${s.since}`,
    })),
  };
}

/**
 * Asks the running hub first (its store is locked while it runs); with no
 * hub answering, opens the store and probes the upstreams itself.
 */
export async function collectStatus(
  options: HubOptions,
  deps: StatusDeps = defaultStatusDeps,
): Promise<StatusView> {
  const url = `http://${formatHostPort(localAddress(options.listen))}/edgebox/status`;
  let runningError: string;
  try {
    const body = await deps.fetchRunning(url, 2000);
    const parsed = hubStatusSchema.safeParse(body);
    if (parsed.success) return fromRunning(parsed.data);
    runningError = `${url} did not answer an EdgeHub status: ${parsed.error.issues[0]?.message ?? ''}`;
  } catch (err) {
    runningError = `no hub answered at ${url}: ${(err as Error).message}`;
  }
  let stored: StoreReading;
  try {
    stored = await deps.readStore(options.dataDir);
  } catch (err) {
    throw new Error(
      `${runningError}; and the store in ${options.dataDir} could not be read: ${(err as Error).message}` +
        ' (if a hub is running elsewhere, pass its --listen)',
      { cause: err },
    );
  }
  return {
    source: 'store',
    nodeName: null,
    ...stored,
    upstreams: await deps.probeUpstreams(options),
  };
}

function age(iso: string | null, now: number): string {
  if (iso === null) return 'never';
  const ms = now - Date.parse(iso);
  if (!Number.isFinite(ms)) return iso;
  const s = Math.max(0, Math.round(ms / 1000));
  const ago = s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
  return `${iso} (${ago} ago)`;
}

export function renderStatus(view: StatusView, now: number): string {
  const table = new Table({
    head: ['component', 'resource', 'objects', 'last sync'],
    style: { head: [], border: [] },
    // One line per row: no separators between rows.
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  const rows = [...view.cache].sort(
    (a, b) => a.component.localeCompare(b.component) || a.resource.localeCompare(b.resource),
  );
  for (const r of rows)
    table.push([r.component, r.resource, String(r.objects), age(r.lastSync, now)]);
  const lines: string[] = [];
  lines.push(
    view.source === 'running hub'
      ? `EdgeHub (running) on node ${view.nodeName ?? '?'}`
      : 'EdgeHub is not running; read from its store',
  );
  if (view.cacheLost !== null) {
    const l = view.cacheLost;
    lines.push(
      `CACHE LOST at ${l.at}: the store could not be opened (${l.reason}) and was moved aside to ${l.movedTo}; ` +
        'offline, this node answers only what it has cached since (503 for the rest)',
    );
  }
  lines.push(rows.length === 0 ? 'nothing cached yet' : table.toString());
  if (view.upstreams.length === 0) {
    lines.push('upstream: unknown (no hub running and no --server or --upstream-kubeconfig given)');
  }
  for (const u of view.upstreams) lines.push(`upstream ${u.name}: ${u.state} (${u.detail})`);
  return lines.join('\n') + '\n';
}

export async function hubStatusReport(
  options: HubOptions,
  deps: StatusDeps = defaultStatusDeps,
): Promise<string> {
  return renderStatus(await collectStatus(options, deps), deps.now());
}
