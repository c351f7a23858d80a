import { hostname } from 'node:os';
import { z } from 'zod';
import { parseGoDuration } from '../src/config/duration.ts';
import { loadConfig, type ConfigSources } from '../src/config/load.ts';

/** Components whose reads are cached and served offline unless `--cache-agents` says otherwise. */
export const DEFAULT_CACHE_AGENTS = ['kubelet', 'kube-proxy', 'coredns', 'flanneld'];

/** Every key is a flag (`dataDir` = `--data-dir`), a YAML key and an env var (`EDGEBOX_HUB_DATA_DIR`). */
export const HUB_ENV_PREFIX = 'EDGEBOX_HUB_';

export function defaultDataDir(uid: number | undefined = process.getuid?.()): string {
  return uid === 0 ? '/var/lib/edgebox/hub' : './.edgebox/hub';
}

/** A comma-separated string (env var, single flag) or a YAML list, both become a list. */
function listOf<T extends z.ZodType>(item: T) {
  return z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    return v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }, z.array(item));
}

const serverUrlSchema = z.string().superRefine((text, ctx) => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: 'expected an absolute http:// or https:// URL such as https://10.0.0.1:6443',
    });
    return;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({
      code: 'custom',
      message: `expected an http:// or https:// URL, not ${url.protocol}//`,
    });
  } else if (url.search !== '' || url.hash !== '') {
    ctx.addIssue({ code: 'custom', message: 'a server URL takes no query or fragment' });
  } else if (url.username !== '' || url.password !== '') {
    ctx.addIssue({
      code: 'custom',
      message: 'credentials do not belong in a server URL; use --upstream-kubeconfig',
    });
  }
});

export interface HostPort {
  host: string;
  port: number;
}

/** `host:port` (IPv6 as `[::1]:port`); port 0 picks a free port (tests). */
export function parseHostPort(text: string): HostPort | Error {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) {
    return new Error('expected host:port such as 127.0.0.1:10271 (port 0-65535)');
  }
  return { host: m[1] ?? m[2] ?? '', port };
}

const hostPortSchema = z.string().transform((text, ctx) => {
  const hp = parseHostPort(text);
  if (hp instanceof Error) {
    ctx.addIssue({ code: 'custom', message: hp.message });
    return z.NEVER;
  }
  return hp;
});

/** A component name as ClientIdentity derives it (lower case), or `*` for every client. */
const agentSchema = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(
    z
      .string()
      .regex(
        /^(\*|[a-z0-9][a-z0-9._-]*)$/,
        'expected component names such as kubelet,kube-proxy (the User-Agent before "/"), or *',
      ),
  );

/** What `--disable-filters` may name (edge-hub/filter/filters.ts registers them). */
export const FILTER_NAMES = ['masterservice', 'masterendpoints', 'discardcloudservice'] as const;

const filterNameSchema = z.enum(FILTER_NAMES, {
  error: (issue) =>
    `no filter named ${JSON.stringify(issue.input)}; filters: ${FILTER_NAMES.join(', ')}`,
});

/**
 * Resources read through one upstream watch per node unless
 * `--shared-resources` says otherwise: what kubelet, kube-proxy and coredns
 * all watch cluster-wide. `none` (or an empty value) shares nothing.
 */
export const DEFAULT_SHARED_RESOURCES = ['services', 'endpointslices.discovery.k8s.io'];
const NO_SHARED_RESOURCES = 'none';

/** `resource` (core) or `resource.group`; never Secrets, whose readers must stay apart. */
const sharedResourceSchema = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(
    z
      .string()
      .regex(
        /^[a-z0-9-]+(\.[a-z0-9.-]+)?$/,
        'expected resources such as services,endpointslices.discovery.k8s.io (resource, then its group)',
      )
      .refine((s) => s !== 'secrets', {
        message: 'secrets are never shared: each component must read only the Secrets it may',
      }),
  );

/** durationSchema, but longer than zero; issues name the value as given ("0s", not 0). */
const positiveDuration = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const ms = typeof v === 'number' ? v : parseGoDuration(v);
  if (ms instanceof Error) {
    ctx.addIssue({ code: 'custom', message: ms.message });
    return z.NEVER;
  }
  if (!(ms > 0)) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration longer than 0s, such as 5s' });
    return z.NEVER;
  }
  return ms;
});

const countSchema = z.coerce
  .number()
  .int('expected a whole number')
  .min(1, 'expected at least 1')
  .max(100, 'expected at most 100');

/** Every option, each with its default; `edgebox hub status` reads the same file with it. */
export const hubOptionsSchema = z
  .object({
    server: listOf(serverUrlSchema).default([]),
    upstreamKubeconfig: z.string().min(1, 'expected a file path').optional(),
    listen: hostPortSchema.default({ host: '127.0.0.1', port: 10271 }),
    dataDir: z
      .string()
      .min(1, 'expected a directory path')
      .default(() => defaultDataDir()),
    nodeName: z
      .string()
      .regex(
        /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
        'expected a DNS subdomain name (lower case letters, digits, "-" and ".")',
      )
      .max(253, 'expected at most 253 characters')
      .default(() => hostname().toLowerCase()),
    cacheAgents: listOf(agentSchema).default(DEFAULT_CACHE_AGENTS),
    healthInterval: positiveDuration.default(5000),
    healthTimeout: positiveDuration.default(2000),
    /** Consecutive failed probes/requests that mark a server down. */
    healthFailureThreshold: countSchema.default(3),
    /** Consecutive successful probes that mark a down server up again. */
    healthSuccessThreshold: countSchema.default(2),
    /** Where pods on this node reach the hub: the API address kubelet and kube-proxy are shown. */
    hubServiceAddress: hostPortSchema.optional(),
    disableFilters: listOf(filterNameSchema).default([]),
    sharedResources: listOf(sharedResourceSchema)
      .refine((list) => list.length <= 1 || !list.includes(NO_SHARED_RESOURCES), {
        message: `"${NO_SHARED_RESOURCES}" shares nothing and takes no other resource beside it`,
      })
      .transform((list) => list.filter((r) => r !== NO_SHARED_RESOURCES))
      .default(DEFAULT_SHARED_RESOURCES),
    metricsListen: hostPortSchema.default({ host: '127.0.0.1', port: 10272 }),
    logLevel: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info'),
  })
  .strict();

export const hubConfigSchema = hubOptionsSchema.superRefine((cfg, ctx) => {
  if (cfg.server.length === 0 && cfg.upstreamKubeconfig === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['server'],
      input: cfg.server,
      message: 'give at least one --server URL or an --upstream-kubeconfig PATH',
    });
  }
});

export type HubConfig = z.output<typeof hubConfigSchema>;

/** Defaults < `--config` YAML < `EDGEBOX_HUB_*` env < flags. Throws ConfigError. */
export function loadHubConfig(sources: Omit<ConfigSources, 'envPrefix'>): HubConfig {
  return loadConfig(hubConfigSchema, { ...sources, envPrefix: HUB_ENV_PREFIX });
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** The same sources without the upstream requirement, for `edgebox hub status`. */
export function loadHubOptions(sources: Omit<ConfigSources, 'envPrefix'>): HubOptions {
  return loadConfig(hubOptionsSchema, { ...sources, envPrefix: HUB_ENV_PREFIX });
}

export type HubOptions = z.output<typeof hubOptionsSchema>;
