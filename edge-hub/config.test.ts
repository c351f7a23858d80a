import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config/load.ts';
import {
  DEFAULT_CACHE_AGENTS,
  defaultDataDir,
  loadHubConfig,
  loadHubOptions,
  parseHostPort,
} from './config.ts';

function yaml(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'hub-config-'));
  const file = join(dir, 'hub.yaml');
  writeFileSync(file, text);
  return file;
}

function problem(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('hub config', () => {
  it('takes filter names to disable from a flag, the YAML file or the env, and refuses unknown ones', () => {
    const server = ['https://10.0.0.1:6443'];
    expect(loadHubConfig({ flags: { server }, env: {} }).disableFilters).toEqual([]);
    const fromEnv = loadHubConfig({
      flags: { server },
      env: { EDGEBOX_HUB_DISABLE_FILTERS: 'masterservice, discardcloudservice' },
    });
    expect(fromEnv.disableFilters).toEqual(['masterservice', 'discardcloudservice']);
    const file = yaml('disableFilters: [masterendpoints]\nhubServiceAddress: 169.254.2.1:10268\n');
    const fromFile = loadHubConfig({ file, flags: { server }, env: {} });
    expect(fromFile.disableFilters).toEqual(['masterendpoints']);
    expect(fromFile.hubServiceAddress).toEqual({ host: '169.254.2.1', port: 10268 });
    expect(
      problem(() =>
        loadHubConfig({ flags: { server, disableFilters: 'masterservice,nosuch' }, env: {} }),
      ),
    ).toContain(
      'no filter named "nosuch"; filters: masterservice, masterendpoints, discardcloudservice',
    );
  });

  it('takes shared resources from a flag or the env and refuses Secrets in one line', () => {
    const server = ['https://10.0.0.1:6443'];
    const fromEnv = loadHubConfig({
      flags: { server },
      env: { EDGEBOX_HUB_SHARED_RESOURCES: 'Services, endpointslices.discovery.k8s.io' },
    });
    expect(fromEnv.sharedResources).toEqual(['services', 'endpointslices.discovery.k8s.io']);
    const refused = problem(() =>
      loadHubConfig({ flags: { server, sharedResources: 'services,secrets' }, env: {} }),
    );
    expect(refused).toContain('secrets are never shared');
    expect(refused.split('\n')).toHaveLength(1);
  });

  it('shares Services and EndpointSlices by default, and nothing when told none or given an empty value', () => {
    const server = ['https://10.0.0.1:6443'];
    const shared = (sharedResources?: string) =>
      loadHubConfig({
        flags: { server, ...(sharedResources === undefined ? {} : { sharedResources }) },
        env: {},
      }).sharedResources;
    expect(shared()).toEqual(['services', 'endpointslices.discovery.k8s.io']);
    expect(shared('none')).toEqual([]);
    expect(shared('')).toEqual([]);
    expect(shared('configmaps')).toEqual(['configmaps']);
    expect(problem(() => shared('none,services'))).toContain('"none" shares nothing');
  });

  it('applies the documented defaults', () => {
    const c = loadHubConfig({ flags: { server: ['https://10.0.0.1:6443'] }, env: {} });
    expect(c.listen).toEqual({ host: '127.0.0.1', port: 10271 });
    expect(c.metricsListen).toEqual({ host: '127.0.0.1', port: 10272 });
    expect(c.cacheAgents).toEqual(DEFAULT_CACHE_AGENTS);
    expect(c.healthInterval).toBe(5000);
    expect(c.healthTimeout).toBe(2000);
    expect(c.nodeName).toMatch(/^[a-z0-9]/);
    expect(c.dataDir).toBe(defaultDataDir());
  });

  it('puts the store under /var/lib as root and under the working directory otherwise', () => {
    expect(defaultDataDir(0)).toBe('/var/lib/edgebox/hub');
    expect(defaultDataDir(1000)).toBe('./.edgebox/hub');
  });

  it('takes flags over env over the YAML file', () => {
    const file = yaml(
      'server: [https://a:6443, https://b:6443]\nlisten: 127.0.0.1:1\nnodeName: from-file\ncacheAgents: [kubelet]\nhealthInterval: 10s\n',
    );
    const c = loadHubConfig({
      file,
      env: { EDGEBOX_HUB_NODE_NAME: 'from-env', EDGEBOX_HUB_LISTEN: '127.0.0.1:2' },
      flags: { listen: '127.0.0.1:3' },
    });
    expect(c.server).toEqual(['https://a:6443', 'https://b:6443']);
    expect(c.nodeName).toBe('from-env');
    expect(c.listen.port).toBe(3);
    expect(c.cacheAgents).toEqual(['kubelet']);
    expect(c.healthInterval).toBe(10_000);
  });

  it('accepts comma-separated lists from env and flags, lower-casing agents', () => {
    const c = loadHubConfig({
      env: { EDGEBOX_HUB_SERVER: 'http://a:8080, http://b:8080' },
      flags: { cacheAgents: 'Kubelet,*' },
    });
    expect(c.server).toEqual(['http://a:8080', 'http://b:8080']);
    expect(c.cacheAgents).toEqual(['kubelet', '*']);
  });

  it('accepts a kubeconfig instead of servers', () => {
    const c = loadHubConfig({ flags: { upstreamKubeconfig: '/etc/kubeconfig' }, env: {} });
    expect(c.upstreamKubeconfig).toBe('/etc/kubeconfig');
    expect(c.server).toEqual([]);
  });

  it('fails with one line naming field, value and what is allowed', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [
        {},
        /^invalid configuration: server = \[\]: give at least one --server URL or an --upstream-kubeconfig PATH$/,
      ],
      [
        { server: ['ftp://x'] },
        /server\.0 = "ftp:\/\/x" \(from --server\): expected an http:\/\/ or https:\/\/ URL/,
      ],
      [
        { server: ['http://a'], listen: 'nowhere' },
        /listen = "nowhere" \(from --listen\): expected host:port/,
      ],
      [
        { server: ['http://a'], healthInterval: '5 seconds' },
        /healthInterval = "5 seconds" \(from --health-interval\): invalid duration/,
      ],
      [
        { server: ['http://a'], healthTimeout: '0s' },
        /healthTimeout = "0s" \(from --health-timeout\): expected a duration longer than 0s/,
      ],
      [
        { server: ['http://a'], metricsListen: '127.0.0.1:70000' },
        /metricsListen = "127.0.0.1:70000".*port 0-65535/,
      ],
      [
        { server: ['http://a'], nodeName: 'Node_1' },
        /nodeName = "Node_1" \(from --node-name\): expected a DNS subdomain name/,
      ],
      [
        { server: ['http://a'], cacheAgents: 'kubelet,bad agent' },
        /cacheAgents\.1 = "bad agent" \(from --cache-agents\): expected component names/,
      ],
      [
        { server: ['http://a'], healthFailureThreshold: '0' },
        /healthFailureThreshold = .*expected at least 1/,
      ],
    ];
    for (const [flags, expected] of cases) {
      const msg = problem(() => loadHubConfig({ flags, env: {} }));
      expect(msg).toMatch(expected);
      expect(msg).not.toContain('\n');
    }
  });

  it('rejects unknown keys in the YAML file', () => {
    const file = yaml('server: http://a\nlisten-address: 127.0.0.1:1\n');
    expect(problem(() => loadHubConfig({ file, env: {} }))).toMatch(
      /unknown option "listen-address"/,
    );
  });

  it('hub status reads the same options without requiring an upstream', () => {
    const o = loadHubOptions({ flags: { dataDir: '/tmp/x' }, env: {} });
    expect(o.dataDir).toBe('/tmp/x');
    expect(o.listen.port).toBe(10271);
  });

  it('parses host:port including IPv6 and port 0', () => {
    expect(parseHostPort('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseHostPort('localhost:10271')).toEqual({ host: 'localhost', port: 10271 });
    expect(parseHostPort('10271')).toBeInstanceOf(Error);
  });
});
