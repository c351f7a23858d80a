import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { connect } from 'node:net';
import { open, readFile, writeFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { join } from 'node:path';

/**
 * containerd's shim launch contract: `<binary> -namespace NS -address SOCK
 * -publish-binary BIN -id ID [-debug] [-bundle DIR] start|delete`, run in
 * the bundle directory. Go's flag syntax (one dash, value as the next word).
 */
export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  debug: boolean;
  action: 'start' | 'delete' | 'serve';
}

const VALUE_FLAGS: Record<string, keyof ShimFlags> = {
  namespace: 'namespace',
  address: 'address',
  'publish-binary': 'publishBinary',
  id: 'id',
  bundle: 'bundle',
};

export function parseShimFlags(args: readonly string[], cwd: string): ShimFlags {
  const values: Partial<Record<keyof ShimFlags, string>> = {};
  let debug = false;
  let action: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('-')) {
      if (action) throw new Error(`unexpected argument ${arg} after ${action}`);
      action = arg;
      continue;
    }
    const [name, inline] = arg.replace(/^--?/, '').split('=', 2) as [string, string | undefined];
    if (name === 'debug') {
      debug = inline === undefined || inline === 'true';
      continue;
    }
    const key = VALUE_FLAGS[name];
    if (!key) throw new Error(`unknown flag -${name}`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new Error(`flag -${name} needs a value`);
    values[key] = value;
  }
  if (action !== 'start' && action !== 'delete' && action !== 'serve')
    throw new Error(`expected start or delete, got ${action ?? 'nothing'}`);
  if (!values.id) throw new Error('-id is required');
  if (!values.namespace) throw new Error('-namespace is required');
  return {
    namespace: values.namespace,
    address: values.address ?? '',
    publishBinary: values.publishBinary ?? '',
    id: values.id,
    bundle: values.bundle ?? cwd,
    debug,
    action,
  };
}

/** The flags again, for the serving process `start` spawns. */
export function shimFlagArgs(flags: ShimFlags, action: ShimFlags['action']): string[] {
  return [
    '-namespace',
    flags.namespace,
    '-address',
    flags.address,
    '-publish-binary',
    flags.publishBinary,
    '-id',
    flags.id,
    '-bundle',
    flags.bundle,
    ...(flags.debug ? ['-debug'] : []),
    action,
  ];
}

/** One socket per pod: named by containerd instance, namespace and pod, short enough for sun_path. */
export function shimSocketPath(runRoot: string, flags: ShimFlags, podId: string): string {
  const key = createHash('sha256')
    .update(`${flags.address}\0${flags.namespace}\0${podId}`)
    .digest('hex')
    .slice(0, 24);
  return join(runRoot, '.shims', `${key}.sock`);
}

export const ADDRESS_FILE = 'address';

export function addressOf(socketPath: string): string {
  return `unix://${socketPath}`;
}

export async function readAddressFile(bundle: string): Promise<string> {
  return (await readFile(join(bundle, ADDRESS_FILE), 'utf8')).trim();
}

export async function writeAddressFile(bundle: string, address: string): Promise<void> {
  await writeFile(join(bundle, ADDRESS_FILE), address);
}

/** Whether a shim answers on this socket (a live pod shim, as opposed to a stale file). */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Starts the serving shim detached (its own session, so it outlives `start`
 * and containerd's restarts) and waits for it to say it listens, on fd 3.
 * Its stderr goes to `stderrPath` for good (what a crash prints is kept).
 */
export async function spawnServer(
  script: string,
  flags: ShimFlags,
  stderrPath: string,
): Promise<void> {
  const stderr = await open(stderrPath, 'a', 0o600);
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [...process.execArgv, script, ...shimFlagArgs(flags, 'serve')],
        { cwd: flags.bundle, detached: true, stdio: ['ignore', 'ignore', stderr.fd, 'pipe'] },
      );
      const ready = child.stdio[3] as Readable;
      ready.once('data', () => {
        ready.destroy();
        child.unref();
        resolve();
      });
      child.once('exit', (code, signal) => {
        void readFile(stderrPath, 'utf8')
          .catch(() => '')
          .then((text) =>
            reject(
              new Error(
                `shim server exited before listening (${signal ?? `code ${code}`}): ${text.trim().split('\n').slice(-5).join('\n')}`,
              ),
            ),
          );
      });
      child.once('error', reject);
    });
  } finally {
    await stderr.close();
  }
}
