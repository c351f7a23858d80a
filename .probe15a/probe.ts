import { request } from 'node:http';
import { join } from 'node:path';
import { FakeApiServer } from '/work/wt15a/test/apiserver/server.ts';
import { seedCluster, KUBELET } from '/work/wt15a/bench/hub/bench-cluster.ts';
import { HubProcess } from '/work/wt15a/bench/hub/hub-process.ts';
import { deployedHubCommand, readHubUnit, buildUnitScript, resolverGone } from '/work/wt15a/bench/hub/memory.ts';

const dir = '/tmp/15a-probe/run-' + Date.now();
const api = new FakeApiServer({});
await api.start();
seedCluster(api);
const unit = readHubUnit();
const cmd = await buildUnitScript(unit, join(dir, 'install'));
if (cmd instanceof Error) throw cmd;
const extra = process.argv.slice(2);
const hub = await HubProcess.spawn({
  command: deployedHubCommand(cmd, [...unit.nodeFlags, ...extra], unit.environment),
  servers: [], dataDir: join(dir, 'store'), logFile: join(dir, 'hub.log'), nodeName: 'node-7',
  extraArgs: ['--upstream-kubeconfig', api.kubeconfigPath(dir, { auth: 'token' })],
});
const metrics = async () => {
  const text: string = await new Promise((res) => request(hub.metricsUrl + '/metrics', (r) => { let b=''; r.on('data', (c) => b += c); r.on('end', () => res(b)); }).end());
  const pick = (n: string) => Number(new RegExp(`^${n} ([0-9.e+]+)`, 'm').exec(text)?.[1] ?? NaN) / 1e6;
  const m = hub.memory();
  return `rss ${(m.rssBytes/1e6).toFixed(0)} peak ${(m.peakBytes/1e6).toFixed(0)} heapUsed ${pick('edgebox_nodejs_heap_size_used_bytes').toFixed(0)} heapTotal ${pick('edgebox_nodejs_heap_size_total_bytes').toFixed(0)} external ${pick('edgebox_nodejs_external_memory_bytes').toFixed(0)}`;
};
await hub.waitReady(); await resolverGone(hub.pid); await hub.waitUpstream('up');
console.log('start', await metrics());
for (let n = 0; n < 3; n++) {
  const t = performance.now();
  let peakDuring = 0;
  const timer = setInterval(() => { peakDuring = Math.max(peakDuring, hub.memory().rssBytes); }, 50);
  await new Promise<void>((resolve, reject) => request(hub.url + '/api/v1/pods', { headers: process.env.UA ? { 'User-Agent': process.env.UA } : KUBELET }, (res) => { res.on('data', () => {}); res.on('end', resolve); res.on('error', reject); }).end());
  console.log('list', n, 'relayed in', (performance.now() - t).toFixed(0), 'ms', await metrics());
  await new Promise((r) => setTimeout(r, 4000));
  clearInterval(timer);
  console.log('after', n, await metrics(), 'max rss sampled', (peakDuring/1e6).toFixed(0));
}
await hub.stop(); await api.close();
