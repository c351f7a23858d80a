import { z } from 'zod';

/**
 * Messages between the host runtime and the guest agent, version 1. This one
 * module is compiled into the guest agent's bundle and used by the host, so
 * both ends validate against the same schemas. Every message carries `v`; a
 * peer speaking another version is refused, not guessed at.
 *
 * The host treats everything from the guest as hostile: strings and arrays
 * are bounded here so validation itself stays cheap, and identifiers are
 * restricted so they are safe as path and cgroup names on either side.
 */
export const PROTOCOL_VERSION = 1;

const version = z.literal(PROTOCOL_VERSION);
export const objectIdSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, {
  message: 'must be 1-64 characters of [A-Za-z0-9_.-], starting with a letter or digit',
});
const shortText = z.string().max(4096);
const uint = z.number().int().nonnegative();
/** Paths on the sandbox share, always relative (the guest joins them to its mount point). */
const sharePath = z
  .string()
  .max(1024)
  .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), {
    message: 'must be a relative path without ".."',
  });
const absolutePath = z
  .string()
  .max(1024)
  .refine((p) => p.startsWith('/') && !p.split('/').includes('..'), {
    message: 'must be an absolute path without ".."',
  });

export const processUserSchema = z.object({ uid: uint, gid: uint });

/** The resource limits (setrlimit) the guest's shell can set, by the letter of its `ulimit`. */
export const RLIMIT_TYPES = [
  'RLIMIT_AS',
  'RLIMIT_CORE',
  'RLIMIT_CPU',
  'RLIMIT_DATA',
  'RLIMIT_FSIZE',
  'RLIMIT_LOCKS',
  'RLIMIT_MEMLOCK',
  'RLIMIT_MSGQUEUE',
  'RLIMIT_NICE',
  'RLIMIT_NOFILE',
  'RLIMIT_NPROC',
  'RLIMIT_RSS',
  'RLIMIT_RTPRIO',
  'RLIMIT_SIGPENDING',
  'RLIMIT_STACK',
] as const;
const rlimitValue = z.union([uint, z.literal('unlimited')]);
export const rlimitSchema = z.object({
  type: z.enum(RLIMIT_TYPES),
  soft: rlimitValue,
  hard: rlimitValue,
});
export type Rlimit = z.infer<typeof rlimitSchema>;

export const processSpecSchema = z.object({
  args: z.array(z.string().max(65536)).min(1).max(4096),
  env: z.array(z.string().max(65536)).max(4096),
  cwd: absolutePath,
  user: processUserSchema,
  /** Set in the guest before the program runs (absent: the guest's own defaults). */
  rlimits: z.array(rlimitSchema).max(RLIMIT_TYPES.length).optional(),
  /** prctl no_new_privs: setuid bits and file capabilities grant nothing. */
  noNewPrivileges: z.boolean().optional(),
  /** A pipe the host feeds with `stdin` requests; without it the process reads /dev/null. */
  stdin: z.boolean().optional(),
  /** A pseudo-terminal for stdin and output (one stream: stdout), resized with `resizeTerminal`. */
  terminal: z.boolean().optional(),
});
export type ProcessSpec = z.infer<typeof processSpecSchema>;

export const guestMountSchema = z.object({
  source: sharePath,
  destination: absolutePath,
  readOnly: z.boolean(),
});

/** A cgroup v2 limit: a number, or `max` (none, as the cgroup files spell it). */
const cgroupLimit = z.union([uint, z.literal('max')]);

/** A cpuset list as cgroup v2 takes it: "0-3,6". */
const cpusetList = z
  .string()
  .max(256)
  .regex(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, { message: 'must be a list such as 0-3,6' });

/** Limits of a container's cgroup; an absent field is left as it is (no limit at creation). */
export const resourceLimitsSchema = z.object({
  cpuQuotaMicros: cgroupLimit.optional(),
  cpuPeriodMicros: z.number().int().positive().optional(),
  /** cpu.weight, 1-10000. */
  cpuWeight: z.number().int().min(1).max(10_000).optional(),
  cpusetCpus: cpusetList.optional(),
  cpusetMems: cpusetList.optional(),
  memoryMaxBytes: cgroupLimit.optional(),
  /** memory.swap.max: swap beyond memory.max (0 when a memory limit comes without it). */
  swapMaxBytes: cgroupLimit.optional(),
  pidsMax: cgroupLimit.optional(),
});
export type ResourceLimits = z.infer<typeof resourceLimitsSchema>;

export const guestContainerSpecSchema = z.object({
  id: objectIdSchema,
  hostname: z.string().max(64).optional(),
  rootfs: sharePath,
  process: processSpecSchema,
  mounts: z.array(guestMountSchema).max(256),
  resources: resourceLimitsSchema,
});
export type GuestContainerSpec = z.infer<typeof guestContainerSpecSchema>;

const requestBase = { v: version, kind: z.literal('request'), id: uint };

/**
 * Raw bytes in one `stdin` request. The host sends one at a time per process
 * and waits for its answer (the guest answers once the process's pipe took
 * them), so a process that stops reading stops the host reading its FIFO,
 * and the guest holds at most one chunk per process.
 */
export const MAX_STDIN_CHUNK_BYTES = 64 * 1024;
const processTarget = { containerId: objectIdSchema, execId: objectIdSchema.optional() };
const terminalDimension = z.number().int().min(0).max(65535);

export const hostRequestSchema = z.discriminatedUnion('op', [
  z.object({ ...requestBase, op: z.literal('createContainer'), spec: guestContainerSpecSchema }),
  z.object({ ...requestBase, op: z.literal('startContainer'), containerId: objectIdSchema }),
  z.object({
    ...requestBase,
    op: z.literal('exec'),
    containerId: objectIdSchema,
    execId: objectIdSchema,
    process: processSpecSchema,
  }),
  z.object({
    ...requestBase,
    op: z.literal('signal'),
    containerId: objectIdSchema,
    execId: objectIdSchema.optional(),
    signal: z.number().int().min(1).max(64),
  }),
  z.object({
    ...requestBase,
    op: z.literal('stdin'),
    ...processTarget,
    // base64: 4 characters per 3 bytes.
    data: z.string().max(Math.ceil(MAX_STDIN_CHUNK_BYTES / 3) * 4),
  }),
  z.object({ ...requestBase, op: z.literal('closeStdin'), ...processTarget }),
  z.object({
    ...requestBase,
    op: z.literal('resizeTerminal'),
    ...processTarget,
    rows: terminalDimension,
    cols: terminalDimension,
  }),
  z.object({ ...requestBase, op: z.literal('stats'), containerId: objectIdSchema }),
  z.object({
    ...requestBase,
    op: z.literal('updateResources'),
    containerId: objectIdSchema,
    resources: resourceLimitsSchema,
  }),
  z.object({ ...requestBase, op: z.literal('deleteContainer'), containerId: objectIdSchema }),
  z.object({ ...requestBase, op: z.literal('shutdown') }),
]);
export type HostRequest = z.infer<typeof hostRequestSchema>;
export type HostRequestOp = HostRequest['op'];
/** A request as callers write it: the channel adds `v`, `kind` and `id`. */
export type HostRequestBody = HostRequest extends infer R
  ? R extends HostRequest
    ? Omit<R, 'v' | 'kind' | 'id'>
    : never
  : never;

export const networkInterfaceStatsSchema = z.object({
  name: z.string().max(32),
  rxBytes: uint,
  txBytes: uint,
  rxPackets: uint,
  txPackets: uint,
});

export const blockIoStatsSchema = z.object({
  device: z.string().max(32),
  readBytes: uint,
  writeBytes: uint,
  readOps: uint,
  writeOps: uint,
});

export const containerStatsSchema = z.object({
  cpu: z.object({ usageMicros: uint, userMicros: uint, systemMicros: uint }),
  memory: z.object({ currentBytes: uint, peakBytes: uint.optional(), limitBytes: uint.optional() }),
  pids: z.object({ current: uint, limit: uint.optional() }),
  /** The pod's network interfaces, loopback left out: the containers of a pod share them. */
  network: z.array(networkInterfaceStatsSchema).max(64),
  io: z.object({
    /** cgroup io.stat: block devices (none unless the sandbox has block devices). */
    block: z.array(blockIoStatsSchema).max(64),
    /**
     * Bytes read and written through read/write system calls by the
     * container's processes (live ones plus the ones they reaped), from
     * /proc/<pid>/io. Inside the guest every file lives on the shared
     * file system, a tmpfs or a pseudo file system.
     */
    fs: z.object({ readBytes: uint, writeBytes: uint, readCalls: uint, writeCalls: uint }),
  }),
});
export type ContainerStats = z.infer<typeof containerStatsSchema>;

export const agentReadySchema = z.object({
  v: version,
  kind: z.literal('ready'),
  agentVersion: z.string().max(64),
  /** Guest clock (seconds since the kernel started) when /init began and when the agent was ready. */
  initUptimeSeconds: z.number().nonnegative(),
  readyUptimeSeconds: z.number().nonnegative(),
  agentRssBytes: uint,
  /** RSS less file-backed pages (the Node binary is mapped from the share): the agent's own memory. */
  agentAnonBytes: uint,
});

export const guestMessageSchema = z.discriminatedUnion('kind', [
  agentReadySchema,
  z.object({
    v: version,
    kind: z.literal('response'),
    id: uint,
    ok: z.literal(true),
    result: z.unknown().optional(),
  }),
  z.object({ v: version, kind: z.literal('error'), id: uint, message: shortText }),
  z.object({
    v: version,
    kind: z.literal('output'),
    containerId: objectIdSchema,
    execId: objectIdSchema.optional(),
    stream: z.enum(['stdout', 'stderr']),
    // base64: 4 characters per 3 bytes; the frame cap bounds it anyway.
    data: z.string().max(1024 * 1024),
  }),
  z.object({
    v: version,
    kind: z.literal('started'),
    containerId: objectIdSchema,
    execId: objectIdSchema.optional(),
    pid: uint,
  }),
  z.object({
    v: version,
    kind: z.literal('exited'),
    containerId: objectIdSchema,
    execId: objectIdSchema.optional(),
    exitCode: z.number().int().min(0).max(255),
    signal: z.number().int().min(1).max(64).optional(),
  }),
  /** The kernel OOM-killed a process of the container (its memory.events oom_kill rose). */
  z.object({ v: version, kind: z.literal('oom'), containerId: objectIdSchema }),
  z.object({
    v: version,
    kind: z.literal('log'),
    level: z.enum(['debug', 'info', 'warn', 'error']),
    message: shortText,
  }),
]);
export type GuestMessage = z.infer<typeof guestMessageSchema>;
export type AgentReady = z.infer<typeof agentReadySchema>;

/** What each request returns; the host validates a response against the schema of its op. */
export const responseResultSchemas = {
  createContainer: z.undefined(),
  startContainer: z.object({ pid: uint }),
  exec: z.object({ pid: uint }),
  signal: z.undefined(),
  stdin: z.undefined(),
  closeStdin: z.undefined(),
  resizeTerminal: z.undefined(),
  stats: containerStatsSchema,
  updateResources: z.undefined(),
  deleteContainer: z.undefined(),
  shutdown: z.undefined(),
} satisfies Record<HostRequestOp, z.ZodType>;
export type ResponseResult<Op extends HostRequestOp> = z.infer<(typeof responseResultSchemas)[Op]>;
