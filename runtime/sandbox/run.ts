import { randomBytes } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { buildGuestImage, loadPrebuiltGuestImage } from '../image/build.ts';
import { defaultSandboxRunRoot } from '../paths.ts';
import type { ContainerSpec } from './config.ts';
import { Sandbox, SandboxError } from './sandbox.ts';
import { reapStaleSandboxes } from './stale.ts';
import { selectAgentChannel } from '../agent-client/channel-select.ts';

export interface RunOptions {
  rootfs: string;
  /** Without hostPath: a pod volume on the sandbox's disk. */
  volumes: { hostPath?: string; containerPath: string; readOnly: boolean }[];
  memoryMiB: number;
  /** Bound of the writable layer and pod volumes; the config default when unset. */
  diskMiB?: number;
  readOnlyRootfs?: boolean;
  /** none or isolated (default none). */
  network?: string;
  cpus: number;
  accel: string;
  cacheDir?: string;
  /** A prebuilt image directory; built (or found in the cache) when unset. */
  imageDir?: string;
  /** auto, vsock or serial (default auto). */
  channel?: string;
  args: string[];
}

const MAX_QUEUED_OUTPUT_BYTES = 8 * 1024 * 1024;

function write(stream: NodeJS.WriteStream, data: Buffer): Promise<void> {
  return new Promise((resolve) => (stream.write(data) ? resolve() : stream.once('drain', resolve)));
}

/**
 * `edgebox sandbox run`: one sandbox, one container, output streamed as it
 * comes, the container's exit status returned. Ctrl-C (or SIGTERM) stops the
 * sandbox cleanly; a second one destroys it at once.
 */
export async function runSandboxCommand(options: RunOptions): Promise<number> {
  if (options.accel !== 'auto' && options.accel !== 'kvm' && options.accel !== 'tcg') {
    throw new Error(`--accel ${options.accel}: expected auto, kvm or tcg`);
  }
  const accel = options.accel;
  const channel = options.channel ?? 'auto';
  if (channel !== 'auto' && channel !== 'vsock' && channel !== 'serial') {
    throw new Error(`--channel ${channel}: expected auto, vsock or serial`);
  }
  const network = options.network ?? 'none';
  if (network !== 'none' && network !== 'isolated') {
    throw new Error(`--network ${network}: expected none or isolated`);
  }
  // A forced vsock that cannot work here fails now, naming what is missing, not after the image build.
  const selected = await selectAgentChannel(channel);
  // A runtime killed with SIGKILL leaves mounts and a run directory behind; tidy them first.
  await reapStaleSandboxes(defaultSandboxRunRoot());
  // Sandbox paths are absolute (see config.ts); --cache-dir may be given relative.
  const cacheDir = options.cacheDir === undefined ? undefined : resolvePath(options.cacheDir);
  const image =
    options.imageDir === undefined
      ? await buildGuestImage({ cacheDir })
      : await loadPrebuiltGuestImage(resolvePath(options.imageDir));
  const id = `run-${randomBytes(4).toString('hex')}`;
  let interrupted = 0;
  let sandbox: Sandbox | undefined;
  const onSignal = (): void => {
    interrupted++;
    if (!sandbox) return;
    if (interrupted === 1) void sandbox.stop(5000);
    else void sandbox.destroy();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    sandbox = await Sandbox.create(
      {
        id,
        memoryMiB: options.memoryMiB,
        ...(options.diskMiB === undefined ? {} : { diskMiB: options.diskMiB }),
        network,
        cpus: options.cpus,
        accel,
        channel: selected.kind,
        image,
        ...(cacheDir ? { cacheDir } : {}),
      },
      // vsock was probed above: the sandbox uses that finding rather than probing again.
      selected.kind === 'vsock'
        ? { probeVsock: () => Promise.resolve({ available: true, socatPath: selected.socatPath }) }
        : {},
    );
    if (interrupted > 0) {
      await sandbox.stop(5000);
      return 130;
    }
    let pending = Promise.resolve();
    let queued = 0;
    const box = sandbox;
    sandbox.onEvent((event) => {
      if (event.type !== 'output') return;
      const stream = event.stream === 'stdout' ? process.stdout : process.stderr;
      queued += event.data.length;
      // Bounded memory when our stdout is slower than the container: hold the guest back.
      if (queued > MAX_QUEUED_OUTPUT_BYTES) box.pauseOutput();
      pending = pending.then(async () => {
        await write(stream, event.data);
        queued -= event.data.length;
        if (queued <= MAX_QUEUED_OUTPUT_BYTES) box.resumeOutput();
      });
    });
    const volumes: ContainerSpec['volumes'] = [];
    for (const [index, { hostPath, ...target }] of options.volumes.entries())
      volumes.push(
        hostPath === undefined
          ? { podVolume: `volume-${index}`, ...target }
          : { hostPath: await realpath(hostPath), ...target },
      );
    await sandbox.createContainer({
      id: 'main',
      rootfs: await realpath(options.rootfs),
      readOnlyRootfs: options.readOnlyRootfs === true,
      args: options.args,
      volumes,
    });
    await sandbox.startContainer('main');
    const status = await sandbox.wait('main');
    await pending;
    await sandbox.stop();
    // Stopped by Ctrl-C: the container died because we ended it, report the interrupt.
    return interrupted > 0 ? 130 : status.exitCode;
  } catch (err) {
    if (sandbox) await sandbox.destroy().catch(() => undefined);
    if (interrupted > 0 && err instanceof SandboxError) return 130;
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
