import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ensureRunRoot } from '../paths.ts';
import { pino } from 'pino';
import { createLogger, type Logger } from '../../src/log.ts';
import { codecFor, timestamp } from './codec.ts';
import { sandboxIdFor, shimConfigFromEnv } from './config.ts';
import { cleanupPodRunDir } from './dead-shim-cleanup.ts';
import { EventPublisher } from './events.ts';
import {
  addressOf,
  parseShimFlags,
  readAddressFile,
  shimSocketPath,
  socketAnswers,
  spawnServer,
  writeAddressFile,
  type ShimFlags,
} from './launch.ts';
import { containerRole, readBundleSpec } from './oci-spec.ts';
import { unmountRootfs } from './rootfs.ts';
import { NETWORK_FILE, TASK_SERVICE, TaskService } from './task-service.ts';
import { detachPodNetwork, type PodNetwork } from '../network/tap-endpoint.ts';
import { TtrpcServer } from './ttrpc.ts';

const USAGE = `Usage: containerd-shim-edgebox-v2 -namespace NS -address ADDRESS -publish-binary BIN -id ID [-bundle DIR] [-debug] start|delete
containerd's runtime io.containerd.edgebox.v2: one microVM per pod (see deploy/runtime/README.md).
containerd runs it; settings come from its environment: EDGEBOX_GUEST_IMAGE, EDGEBOX_RUN_DIR,
EDGEBOX_VM_MEMORY_MIB, EDGEBOX_VM_CPUS, EDGEBOX_ACCEL.
`;

/** `containerd-shim-edgebox-v2`: containerd's runtime `io.containerd.edgebox.v2`. */
export async function main(argv: readonly string[]): Promise<number> {
  if (argv.slice(2).some((a) => /^--?h(elp)?$/.test(a))) {
    process.stdout.write(USAGE);
    return 0;
  }
  let flags: ShimFlags;
  try {
    flags = parseShimFlags(argv.slice(2), process.cwd());
  } catch (err) {
    process.stderr.write(`containerd-shim-edgebox-v2: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    switch (flags.action) {
      case 'start':
        process.stdout.write(await start(flags, argv[1]!));
        return 0;
      case 'delete':
        process.stdout.write(await deleteAfterDeadShim(flags));
        return 0;
      case 'serve':
        await serve(flags);
        return 0;
    }
  } catch (err) {
    process.stderr.write(
      `containerd-shim-edgebox-v2 ${flags.action} ${flags.id}: ${(err as Error).message}\n`,
    );
    return 1;
  }
}

/**
 * Prints the address of the pod's shim: the one already serving the pod
 * (the pod's later containers) or a new one started detached.
 */
async function start(flags: ShimFlags, script: string): Promise<string> {
  const role = containerRole(flags.id, await readBundleSpec(flags.bundle));
  if (role.kind === 'container') {
    // CRI puts every bundle of a namespace side by side: the pod's is a sibling.
    const address = await readAddressFile(join(dirname(flags.bundle), role.podId)).catch(() => {
      throw new Error(`pod ${role.podId} has no running edgebox shim for container ${flags.id}`);
    });
    await writeAddressFile(flags.bundle, address);
    return address;
  }
  const { runRoot } = shimConfigFromEnv();
  const socket = shimSocketPath(runRoot, flags, role.podId);
  if (!(await socketAnswers(socket))) {
    await ensureRunRoot(runRoot);
    await mkdir(dirname(socket), { recursive: true, mode: 0o700 });
    await spawnServer(script, flags, socket.replace(/\.sock$/, '.stderr'));
  }
  await writeAddressFile(flags.bundle, addressOf(socket));
  return addressOf(socket);
}

/** The shim log goes to the FIFO containerd reads for it (`<bundle>/log`), when there is one. */
function shimLogger(flags: ShimFlags): Logger {
  const level = flags.debug ? 'debug' : (process.env.EDGEBOX_LOG_LEVEL ?? 'info');
  try {
    const fd = openSync(join(flags.bundle, 'log'), constants.O_WRONLY | constants.O_NONBLOCK);
    return createLogger({ name: 'edgebox-shim', level, destination: pino.destination({ fd }) });
  } catch {
    return createLogger({ name: 'edgebox-shim', level });
  }
}

async function serve(flags: ShimFlags): Promise<void> {
  const log = shimLogger(flags).child({ id: flags.id, namespace: flags.namespace });
  const config = shimConfigFromEnv();
  const role = containerRole(flags.id, await readBundleSpec(flags.bundle));
  const socket = shimSocketPath(config.runRoot, flags, role.podId);
  const events = new EventPublisher(process.env.TTRPC_ADDRESS ?? '', flags.namespace, log);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await service.close();
      await events.flushed();
      events.close();
      await server.close();
      await rm(socket, { force: true });
      log.info('shim exiting');
      process.exit(0);
    })());
  const service = new TaskService({ config, events, log, onShutdown: () => void close() });
  const server = new TtrpcServer(new Map([[TASK_SERVICE, service.methods()]]), log);
  await server.listen(socket);
  process.on('SIGTERM', () => void close());
  process.on('SIGINT', () => void close());
  log.info({ socket }, 'shim serving');
  // Tell `start` (fd 3) that the socket is up.
  writeSync(READY_FD, 'ready\n');
  closeSync(READY_FD);
}

const READY_FD = 3;

/** Cleans up after a dead shim; prints a DeleteResponse (killed, now). */
async function deleteAfterDeadShim(flags: ShimFlags): Promise<Buffer> {
  const config = shimConfigFromEnv();
  const spec = await readBundleSpec(flags.bundle).catch(() => undefined);
  const role = spec ? containerRole(flags.id, spec) : { kind: 'pod' as const, podId: flags.id };
  const socket = shimSocketPath(config.runRoot, flags, role.podId);
  // A container's delete must not take down a pod whose shim is alive and well.
  if (role.kind !== 'container' || !(await socketAnswers(socket))) {
    await cleanupPodRunDir(config.runRoot, sandboxIdFor(role.podId));
    if (role.kind !== 'container') await rm(socket, { force: true });
  }
  await unmountRootfs(flags.bundle);
  const network = await readFile(join(flags.bundle, NETWORK_FILE), 'utf8').catch(() => undefined);
  if (network) await detachPodNetwork(JSON.parse(network) as PodNetwork);
  return codecFor('containerd.task.v2.DeleteResponse').encode({
    pid: 0,
    exit_status: 128 + 9,
    exited_at: timestamp(new Date()),
  });
}
