import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { UpstreamTls } from './credentials.ts';
// Type-only, so nothing of it runs in the hub; it also puts the child in the
// program, so a build narrowed to the hub's imports emits it beside this file.
import type { ResolvedFileStamp, ResolverChildDocument } from './kubeconfig-resolver-child.ts';

/** What one run of the resolver child found in the kubeconfig. */
export interface KubeconfigResolution {
  server: string;
  tls: UpstreamTls;
  authorization: string | undefined;
  /** exec plugin, auth-provider or token file. */
  dynamic: boolean;
  /** The kubeconfig and every file it references, as they were when read. */
  files: ResolvedFileStamp[];
}

const fileStampSchema = z.object({
  path: z.string(),
  mtimeMs: z.number(),
  size: z.number(),
  ino: z.number(),
}) satisfies z.ZodType<ResolvedFileStamp>;

const documentSchema = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    server: z.string().min(1),
    ca: z.base64().optional(),
    cert: z.base64().optional(),
    key: z.base64().optional(),
    rejectUnauthorized: z.boolean(),
    servername: z.string().optional(),
    authorization: z.string().optional(),
    dynamic: z.boolean(),
    files: z.array(fileStampSchema),
  }),
  z.object({ ok: z.literal(false), error: z.string(), files: z.array(fileStampSchema) }),
]) satisfies z.ZodType<ResolverChildDocument>;

export const RESOLVER_TIMEOUT_MS = 10_000;
/** Far above any kubeconfig's certificates and tokens; a runaway child is not buffered forever. */
const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;
const STDERR_TAIL_BYTES = 2048;

/** The child beside this module: `.ts` from the sources, `.js` in a compiled build. */
const CHILD_PATH = fileURLToPath(
  new URL(
    import.meta.url.endsWith('.ts')
      ? './kubeconfig-resolver-child.ts'
      : './kubeconfig-resolver-child.js',
    import.meta.url,
  ),
);

/**
 * The hub's own Node flags the child runs with too: V8 and memory flags,
 * warnings, experimental switches (type stripping), export conditions.
 * Nothing else: `-e`/`-p` would run the hub's script again instead of the
 * child, preloaded modules and loader hooks belong to the hub (a hook noting
 * what the hub imports must not see the child's client-node), and a debugger
 * or profiler would fight the hub's for its port or files.
 */
const INHERITED_FLAG =
  /^--(max-|experimental-|no-|disable-warning|stack-size|stack-trace-limit|jitless|enable-source-maps|conditions|unhandled-rejections|trace-warnings|pending-deprecation|throw-deprecation)/;
/** Flags of the hub's alone whose value may come as the next argument (skipped with it). */
const HUB_ONLY_WITH_VALUE = new Set([
  '-e',
  '--eval',
  '-p',
  '--print',
  '--import',
  '--require',
  '-r',
  '--loader',
  '--experimental-loader',
  '--input-type',
  '--inspect-port',
  '--env-file',
  '--env-file-if-exists',
  '--watch-path',
  '--cpu-prof-dir',
  '--heap-prof-dir',
]);
/** Inherited flags whose value may come as the next argument. */
const INHERITED_WITH_VALUE = new Set(['--conditions', '-C', '--disable-warning', '--stack-size']);

export function childExecArgv(execArgv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i] ?? '';
    const name = arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg;
    const separateValue = name === arg && i + 1 < execArgv.length;
    if (HUB_ONLY_WITH_VALUE.has(name)) {
      if (separateValue) i++;
    } else if (INHERITED_FLAG.test(name) || name === '-C') {
      kept.push(arg);
      if (separateValue && INHERITED_WITH_VALUE.has(name)) kept.push(execArgv[++i] ?? '');
    }
  }
  return kept;
}

export interface ResolveOptions {
  timeoutMs?: number;
  /** Tests point it at a stand-in child; production uses kubeconfig-resolver-child. */
  childPath?: string;
}

/**
 * Runs the resolver child on `kubeconfigPath` and returns what it found.
 * Rejects with the child's own error (which names the file and what is wrong),
 * or says that it hung (killed after the timeout, with whatever it started),
 * crashed or answered garbage. The child's stdout carries keys: it is never
 * put into an error; only the last line of its stderr is.
 */
export function resolveKubeconfigInChild(
  kubeconfigPath: string,
  opts: ResolveOptions = {},
): Promise<KubeconfigResolution> {
  const timeoutMs = opts.timeoutMs ?? RESOLVER_TIMEOUT_MS;
  const what = `resolving upstream kubeconfig ${kubeconfigPath}`;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [...childExecArgv(process.execArgv), opts.childPath ?? CHILD_PATH, kubeconfigPath],
      // Its own process group, so a hung exec plugin dies with it.
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    const out: Buffer[] = [];
    let outBytes = 0;
    let errTail = '';
    let timedOut = false;
    let overflow = false;
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL'); // the group is gone already; the child itself may not be
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      outBytes += c.length;
      if (outBytes > MAX_DOCUMENT_BYTES) {
        overflow = true;
        killGroup();
        return;
      }
      out.push(c);
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      errTail = (errTail + c).slice(-STDERR_TAIL_BYTES);
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new Error(`${what}: cannot start ${process.execPath}: ${err.message}`, { cause: err }),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const lastErrLine = errTail.trim().split('\n').at(-1)?.slice(0, 300) ?? '';
      const exited = `${signal === null ? `exit code ${code}` : `signal ${signal}`}${lastErrLine === '' ? '' : `: ${lastErrLine}`}`;
      if (timedOut) {
        reject(new Error(`${what}: the resolver did not finish within ${timeoutMs} ms; killed it`));
        return;
      }
      if (overflow) {
        reject(new Error(`${what}: the resolver wrote more than ${MAX_DOCUMENT_BYTES} bytes`));
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(out).toString('utf8'));
      } catch {
        reject(new Error(`${what}: the resolver wrote no JSON document (${exited})`));
        return;
      }
      const doc = documentSchema.safeParse(parsed);
      if (!doc.success) {
        // Issue paths only: the values may be keys.
        const where = doc.error.issues.map((i) => i.path.join('.') || '(document)').join(', ');
        reject(new Error(`${what}: the resolver's document is malformed at ${where}`));
        return;
      }
      const d = doc.data;
      if (!d.ok) {
        reject(new Error(d.error));
        return;
      }
      const tls: UpstreamTls = { rejectUnauthorized: d.rejectUnauthorized };
      if (d.ca !== undefined) tls.ca = Buffer.from(d.ca, 'base64');
      if (d.cert !== undefined) tls.cert = Buffer.from(d.cert, 'base64');
      if (d.key !== undefined) tls.key = Buffer.from(d.key, 'base64');
      if (d.servername !== undefined) tls.servername = d.servername;
      resolvePromise({
        server: d.server,
        tls,
        authorization: d.authorization,
        dynamic: d.dynamic,
        files: d.files,
      });
    });
  });
}

/** True when any file differs from its stamp (changed, replaced, appeared or vanished). */
export async function filesChanged(files: readonly ResolvedFileStamp[]): Promise<boolean> {
  const now = await Promise.all(
    files.map(async (f) => {
      try {
        const s = await stat(f.path);
        return s.mtimeMs !== f.mtimeMs || s.size !== f.size || s.ino !== f.ino;
      } catch {
        return f.mtimeMs !== -1;
      }
    }),
  );
  return now.includes(true);
}
