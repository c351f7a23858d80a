import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { FakeApiServer } from '../../test/apiserver/server.ts';
import { progress, verdict, type BenchRow } from './bench-report.ts';
import { CLUSTER_PODS, KUBELET } from './bench-cluster.ts';
import { REPO_DIR } from './compiled-hub.ts';
import { HubProcess } from './hub-process.ts';
import { formatMb } from './latency-stats.ts';
import { deployedHubCommand, readHubUnit, resolverGone, UNIT_INSTALL_DIR } from './memory.ts';
import { nodeName } from './pod-fixture.ts';

const PEAK_TARGET_MB = 150;
const LISTS = 3;
const ALL_PODS = '/api/v1/pods';

/** A build of the hub to run as the unit does: the script `npm run build` writes, from some checkout. */
export interface UnitBuild {
  label: string;
  /** [node, <checkout>/dist/hub/edgebox.cjs] */
  command: string[];
  /** Held to the target (this checkout) or shown beside it (an earlier commit). */
  target: boolean;
}

/**
 * The unit's script built from commit `ref` of this repository (`git
 * archive`, its own scripts/bundle-hub.ts, this checkout's node_modules):
 * the "before" of a change, measured in the same run.
 */
export function buildUnitAt(ref: string, dir: string): UnitBuild | Error {
  try {
    mkdirSync(dir, { recursive: true });
    const archive = execFileSync('git', ['-C', REPO_DIR, 'archive', ref], {
      maxBuffer: 512 * 1024 * 1024,
    });
    execFileSync('tar', ['-x', '-C', dir], { input: archive });
    if (!existsSync(join(dir, 'node_modules'))) {
      symlinkSync(join(REPO_DIR, 'node_modules'), join(dir, 'node_modules'));
    }
    execFileSync(process.execPath, [join(dir, 'scripts/bundle-hub.ts'), join(dir, 'dist/hub')], {
      stdio: 'ignore',
    });
  } catch (err) {
    return new Error(`building ${ref}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const unit = readHubUnit();
  return {
    label: `at ${ref}`,
    command: [process.execPath, join(dir, unit.script.slice(UNIT_INSTALL_DIR.length))],
    target: false,
  };
}

/** kubelet's LIST of every pod through the hub, read and dropped as it comes: its size in bytes. */
function listAllPods(hubUrl: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${hubUrl}${ALL_PODS}`, { headers: KUBELET }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('end', () => {
        if (res.statusCode !== 200 || res.headers['x-edgebox-source'] !== 'upstream') {
          reject(
            new Error(
              `LIST of all pods: HTTP ${res.statusCode} from ${res.headers['x-edgebox-source']}`,
            ),
          );
        } else resolve(bytes);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** CPU time the process has used (utime + stime, in clock ticks). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Until the hub has used no CPU for half a second: the recording behind the answer is done. */
async function settled(pid: number): Promise<void> {
  const deadline = performance.now() + 60_000;
  let last = cpuTicks(pid);
  let quiet = 0;
  while (quiet < 2) {
    if (performance.now() > deadline) throw new Error('the hub never went idle after the LIST');
    await delay(250);
    const now = cpuTicks(pid);
    quiet = now === last ? quiet + 1 : 0;
    last = now;
  }
}

/**
 * Peak RSS of the hub as deploy/hub/edgebox-hub.service runs it (the bundle,
 * its Environment= and node flags, --upstream-kubeconfig naming the API
 * double, online), on an empty store, while kubelet lists all 10,000 pods
 * (about 46 MB) through it three times in a row and the hub relays and
 * records each.
 */
export async function measureBigListPeak(
  api: FakeApiServer,
  work: string,
  builds: readonly UnitBuild[],
): Promise<BenchRow[]> {
  const unit = readHubUnit();
  const rows: BenchRow[] = [];
  for (const [i, build] of builds.entries()) {
    const name = `peak RSS while ${CLUSTER_PODS.toLocaleString('en')} pods are listed through the hub and recorded, ${LISTS} times in a row (as deployed, ${build.label})`;
    progress(name);
    const dir = join(work, `big-list-${i}`);
    mkdirSync(dir, { recursive: true });
    const hub = await HubProcess.spawn({
      command: deployedHubCommand(build.command, unit.nodeFlags, unit.environment),
      servers: [],
      dataDir: join(dir, 'store'),
      logFile: join(dir, 'hub.log'),
      nodeName: nodeName(7),
      extraArgs: [
        '--upstream-kubeconfig',
        api.kubeconfigPath(dir, { auth: 'token' }),
        // The double, in this process, encodes the 46 MB list in one go: its probe answers wait.
        '--health-interval',
        '5s',
        '--health-timeout',
        '5s',
      ],
    });
    try {
      await hub.waitReady();
      await resolverGone(hub.pid);
      await hub.waitUpstream('up');
      let bytes = 0;
      for (let n = 0; n < LISTS; n++) {
        bytes = await listAllPods(hub.url);
        await settled(hub.pid);
      }
      const m = hub.memory();
      rows.push({
        measurement: name,
        measured: `${formatMb(m.peakBytes)} peak, ${formatMb(m.rssBytes)} after (LIST of ${formatMb(bytes)})`,
        target: build.target ? `≤ ${PEAK_TARGET_MB} MB` : 'reference',
        verdict: build.target ? verdict(m.peakBytes <= PEAK_TARGET_MB * 1024 * 1024) : '',
      });
    } finally {
      await hub.stop();
    }
  }
  return rows;
}
