import type { Command } from 'commander';

/**
 * `HOST:GUEST[:ro]` as `--volume` takes it; an empty HOST (`:GUEST`) asks for
 * a directory on the sandbox's disk, empty and bounded by `--disk`.
 */
export function parseVolume(text: string): {
  hostPath?: string;
  containerPath: string;
  readOnly: boolean;
} {
  const parts = text.split(':');
  const [hostPath, containerPath, mode] = parts;
  if (parts.length < 2 || parts.length > 3 || !containerPath?.startsWith('/')) {
    throw new Error(`--volume ${text}: expected [HOST]:GUEST[:ro] with an absolute GUEST path`);
  }
  if (mode !== undefined && mode !== 'ro' && mode !== 'rw') {
    throw new Error(`--volume ${text}: mode must be ro or rw, not ${mode}`);
  }
  if (!hostPath && mode === 'ro')
    throw new Error(`--volume ${text}: a volume on the sandbox's disk starts empty, so not ro`);
  return { ...(hostPath ? { hostPath } : {}), containerPath, readOnly: mode === 'ro' };
}

/** `512M`, `1G`, `256` (MiB) -> MiB; `flag` names the option in the error. */
export function parseSizeMiB(text: string, flag = '--memory'): number {
  const match = /^(\d+)([MG]i?B?)?$/i.exec(text.trim());
  if (!match?.[1]) throw new Error(`${flag} ${text}: expected a size like 512M or 1G`);
  const value = Number(match[1]);
  return match[2]?.toUpperCase().startsWith('G') ? value * 1024 : value;
}

export function parseMemoryMiB(text: string): number {
  return parseSizeMiB(text, '--memory');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Adds `edgebox sandbox run` and `edgebox sandbox image build`. */
export function registerSandboxCommands(program: Command): void {
  const sandbox = program
    .command('sandbox')
    .description('run untrusted workloads in a microVM with its own kernel');

  sandbox
    .command('run')
    .description('boot a sandbox VM, run CMD as a container in it, and exit with its exit code')
    .requiredOption('--rootfs <dir>', 'root file system directory of the container')
    .option(
      '--volume <[host]:guest[:ro]>',
      "share a host path into the container (repeatable); ':guest' is an empty directory on the sandbox's disk, bounded by --disk",
      collect,
      [],
    )
    .option('--memory <size>', 'VM memory', '512M')
    .option(
      '--disk <size>',
      "bound of the container's writable layer and ':guest' volumes (on a sparse image)",
      '2G',
    )
    .option('--read-only-rootfs', 'share the rootfs read-only, with no writable layer')
    .option(
      '--network <none|isolated>',
      'none: loopback only; isolated: a NIC on a user-mode stack that reaches nothing',
      'none',
    )
    .option('--cpus <n>', 'VM vCPUs', '1')
    .option(
      '--accel <auto|kvm|tcg>',
      'accelerator (auto probes whether KVM boots the guest)',
      'auto',
    )
    .option('--cache-dir <dir>', 'guest image cache (default: $EDGEBOX_CACHE_DIR or per user)')
    .option(
      '--image <dir>',
      'a prebuilt guest image (`image build --out`; default $EDGEBOX_GUEST_IMAGE, which the package sets); else built or found in the cache',
    )
    .option(
      '--channel <auto|vsock|serial>',
      'host-guest agent channel (auto: vsock where the host has vhost-vsock and socat)',
      'auto',
    )
    .argument('<cmd...>', 'command and arguments, after --')
    .action(
      async (
        cmd: string[],
        opts: {
          rootfs: string;
          volume: string[];
          memory: string;
          disk: string;
          readOnlyRootfs?: boolean;
          network: string;
          cpus: string;
          accel: string;
          cacheDir?: string;
          image?: string;
          channel: string;
        },
      ) => {
        const { runSandboxCommand } = await import('./sandbox/run.ts');
        const imageDir = opts.image ?? process.env.EDGEBOX_GUEST_IMAGE;
        const code = await runSandboxCommand({
          rootfs: opts.rootfs,
          volumes: opts.volume.map(parseVolume),
          memoryMiB: parseMemoryMiB(opts.memory),
          diskMiB: parseSizeMiB(opts.disk, '--disk'),
          readOnlyRootfs: opts.readOnlyRootfs === true,
          network: opts.network,
          cpus: Number(opts.cpus),
          accel: opts.accel,
          cacheDir: opts.cacheDir,
          ...(imageDir === undefined ? {} : { imageDir }),
          channel: opts.channel,
          args: cmd,
        });
        // The container's code is the command's code (128+N for a signal), as with docker run.
        process.exit(code);
      },
    );

  sandbox
    .command('gc')
    .description('remove the mounts and run directories of sandboxes whose runtime was killed')
    .action(async () => {
      const [{ reapStaleSandboxes }, { defaultSandboxRunRoot }] = await Promise.all([
        import('./sandbox/stale.ts'),
        import('./paths.ts'),
      ]);
      for (const id of await reapStaleSandboxes(defaultSandboxRunRoot())) {
        process.stdout.write(`removed stale sandbox ${id}\n`);
      }
    });

  const image = sandbox.command('image').description('the guest kernel and initramfs');
  image
    .command('build')
    .description('build (or find in the cache) the guest image from Debian packages')
    .option('--out <dir>', 'also copy the kernel, initramfs and Node runtime here')
    .option(
      '--cache-dir <dir>',
      'cache directory (default: $EDGEBOX_CACHE_DIR, /var/cache/edgebox as root, else ~/.cache/edgebox)',
    )
    .option('--no-cache', 'build afresh into --out without using the cache')
    .action(async (opts: { out?: string; cacheDir?: string; cache: boolean }) => {
      const [{ buildGuestImage, BUILD_STEPS }, { terminalProgress }] = await Promise.all([
        import('./image/build.ts'),
        import('./image/progress.ts'),
      ]);
      if (!opts.cache && !opts.out) throw new Error('--no-cache needs --out');
      const built = await buildGuestImage({
        out: opts.out,
        cacheDir: opts.cacheDir,
        useCache: opts.cache,
        progress: terminalProgress(BUILD_STEPS),
      });
      process.stdout.write(`${built.dir}\n`);
    });
}
