import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { CliError } from '../cli-error.ts';

/**
 * Loads a part's configuration from, in rising precedence: the schema's
 * defaults, a YAML file (`--config`), environment variables
 * (`<envPrefix><UPPER_SNAKE_KEY>`) and command-line flags. An invalid value
 * fails here, at start, naming the field, the value and what is allowed.
 */
export interface ConfigSources {
  /** Flags the user actually gave (commander values without defaults). */
  flags?: Record<string, unknown>;
  /** Path of a YAML file whose top-level keys are the schema's keys. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** e.g. `EDGEBOX_HUB_`; no env lookup when omitted. */
  envPrefix?: string;
}

/** An invalid configuration: a one-line usage error on the CLI (exit code 2). */
export class ConfigError extends CliError {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`, 2);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

function envKey(prefix: string, key: string): string {
  return prefix + key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`config file ${path}: ${(err as Error).message}`]);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new ConfigError([`config file ${path}: not valid YAML: ${(err as Error).message}`]);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError([`config file ${path}: expected a mapping of option names to values`]);
  }
  return parsed as Record<string, unknown>;
}

function schemaKeys(schema: z.ZodType): string[] {
  const shape = (schema as unknown as { shape?: Record<string, unknown> }).shape;
  return shape === undefined ? [] : Object.keys(shape);
}

/** Where each key's value came from, so an error can say "(from --listen)". */
type Origin = Record<string, string>;

export function loadConfig<S extends z.ZodType>(schema: S, sources: ConfigSources): z.output<S> {
  const merged: Record<string, unknown> = {};
  const origin: Origin = {};
  const keys = schemaKeys(schema);
  if (sources.file !== undefined) {
    const fromFile = readConfigFile(sources.file);
    const unknownKeys =
      keys.length > 0 ? Object.keys(fromFile).filter((k) => !keys.includes(k)) : [];
    if (unknownKeys.length > 0) {
      throw new ConfigError(
        unknownKeys.map(
          (k) =>
            `config file ${sources.file}: unknown option ${JSON.stringify(k)} (allowed: ${keys.join(', ')})`,
        ),
      );
    }
    for (const [k, v] of Object.entries(fromFile)) {
      merged[k] = v;
      origin[k] = `config file ${sources.file}`;
    }
  }
  if (sources.envPrefix !== undefined) {
    const env = sources.env ?? process.env;
    for (const k of keys) {
      const name = envKey(sources.envPrefix, k);
      const v = env[name];
      if (v !== undefined) {
        merged[k] = v;
        origin[k] = `env ${name}`;
      }
    }
  }
  for (const [k, v] of Object.entries(sources.flags ?? {})) {
    if (v === undefined) continue;
    merged[k] = v;
    origin[k] = `--${k.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase()}`;
  }
  const result = schema.safeParse(merged, { reportInput: true });
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => {
      const field = issue.path.join('.');
      const top = String(issue.path[0] ?? '');
      const value = issue.input === undefined ? '(missing)' : JSON.stringify(issue.input);
      const from = origin[top] !== undefined ? ` (from ${origin[top]})` : '';
      return `${field || '(root)'} = ${value}${from}: ${issue.message}`;
    }),
  );
}
