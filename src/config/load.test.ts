import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, loadConfig } from './load.ts';
import { durationSchema } from './duration.ts';

const schema = z.object({
  listen: z
    .string()
    .regex(/^[^:]+:\d+$/, 'expected host:port')
    .default('127.0.0.1:10271'),
  healthInterval: durationSchema.default(5000),
  cacheAgents: z.array(z.string()).default(['kubelet']),
});

function tmpFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgebox-config-'));
  const path = join(dir, 'config.yaml');
  writeFileSync(path, text);
  return path;
}

describe('loadConfig', () => {
  it('uses defaults when nothing is given', () => {
    expect(loadConfig(schema, {})).toEqual({
      listen: '127.0.0.1:10271',
      healthInterval: 5000,
      cacheAgents: ['kubelet'],
    });
  });

  it('layers file < env < flags', () => {
    const file = tmpFile(
      'listen: 0.0.0.0:1\nhealthInterval: 10s\ncacheAgents: [kubelet, coredns]\n',
    );
    const cfg = loadConfig(schema, {
      file,
      env: { EDGEBOX_HUB_HEALTH_INTERVAL: '7s', EDGEBOX_HUB_LISTEN: '1.2.3.4:5' },
      envPrefix: 'EDGEBOX_HUB_',
      flags: { listen: '127.0.0.1:9' },
    });
    expect(cfg).toEqual({
      listen: '127.0.0.1:9',
      healthInterval: 7000,
      cacheAgents: ['kubelet', 'coredns'],
    });
  });

  it('names the field, the value, its origin and what is allowed', () => {
    let err: unknown;
    try {
      loadConfig(schema, { flags: { listen: 'nowhere' } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      'invalid configuration: listen = "nowhere" (from --listen): expected host:port',
    );
  });

  it('reports an invalid duration from a file with the file named', () => {
    const file = tmpFile('healthInterval: often\n');
    expect(() => loadConfig(schema, { file })).toThrow(
      /healthInterval = "often" \(from config file .*config\.yaml\): invalid duration "often"/,
    );
  });

  it('refuses unknown keys and broken YAML in a file', () => {
    expect(() => loadConfig(schema, { file: tmpFile('lisen: x\n') })).toThrow(
      /unknown option "lisen" \(allowed: listen, healthInterval, cacheAgents\)/,
    );
    expect(() => loadConfig(schema, { file: tmpFile('listen: [\n') })).toThrow(/not valid YAML/);
    expect(() => loadConfig(schema, { file: '/nonexistent/edgebox.yaml' })).toThrow(
      /config file \/nonexistent\/edgebox.yaml: ENOENT/,
    );
  });
});
