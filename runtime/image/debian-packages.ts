import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { join } from 'node:path';
import { runCommand } from '../process/run-command.ts';

export interface DebianPackage {
  name: string;
  version: string;
}

/** The version apt would install now; needs an `apt-get update` to have run once. */
export async function candidateVersion(name: string): Promise<string> {
  const { stdout } = await runCommand('apt-cache', ['policy', name]);
  const match = /Candidate:\s*(\S+)/.exec(stdout);
  if (!match?.[1] || match[1] === '(none)') {
    throw new Error(
      `Debian package ${name} has no installation candidate (run \`apt-get update\` first)`,
    );
  }
  return match[1];
}

const packagesSchema = z.array(z.object({ name: z.string(), version: z.string() }));

/**
 * What apt said, kept in `recordPath` until its package lists change (the
 * next `apt-get update`): apt-cache takes seconds on a full package list.
 */
async function rememberedUntilListsChange<T>(
  recordPath: string,
  schema: z.ZodType<T>,
  ask: () => Promise<T>,
): Promise<T> {
  const listsMtimeMs = (await stat('/var/lib/apt/lists').catch(() => undefined))?.mtimeMs ?? 0;
  try {
    const record = z
      .object({ listsMtimeMs: z.number(), answer: schema })
      .parse(JSON.parse(await readFile(recordPath, 'utf8')));
    if (record.listsMtimeMs === listsMtimeMs) return record.answer;
  } catch {
    // Not asked yet (or a record of another format).
  }
  const answer = await ask();
  await writeFile(recordPath, JSON.stringify({ listsMtimeMs, answer }));
  return answer;
}

/**
 * The cloud kernel metapackage and the versioned image package it depends on
 * (the one that holds the kernel and its modules).
 */
export function kernelPackages(meta: string, cacheDir: string): Promise<DebianPackage[]> {
  return rememberedUntilListsChange(
    join(cacheDir, `kernel-packages-${meta}.json`),
    packagesSchema,
    async () => {
      const metaVersion = await candidateVersion(meta).catch(async (err: unknown) => {
        // A fresh machine may never have fetched package lists; as root, fetch them once.
        if (process.getuid?.() !== 0) throw err;
        await runCommand('apt-get', ['update', '-qq']);
        return candidateVersion(meta);
      });
      const { stdout } = await runCommand('apt-cache', ['depends', meta]);
      const dep = /Depends:\s*(linux-image-\S+)/.exec(stdout)?.[1];
      if (!dep) throw new Error(`cannot find the kernel image package that ${meta} depends on`);
      return [
        { name: meta, version: metaVersion },
        { name: dep, version: await candidateVersion(dep) },
      ];
    },
  );
}

/** A Debian package at the version apt would install now (for guest inputs such as socat). */
export async function guestPackage(name: string, cacheDir: string): Promise<DebianPackage> {
  const version = await rememberedUntilListsChange(
    join(cacheDir, `package-${name}.json`),
    z.string(),
    () => candidateVersion(name),
  );
  return { name, version };
}

/** `name_version` as apt-get download names files, ':' in the version escaped. */
function fileVersion(pkg: DebianPackage): string {
  return `${pkg.name}_${pkg.version.replaceAll(':', '%3a')}`;
}

/**
 * Unpacks a package once into `<cacheDir>/unpacked/<name>_<version>` and
 * returns that directory: later builds (and every `sandbox run` checking the
 * image cache) read the files without running dpkg-deb again.
 */
export async function unpackedPackage(pkg: DebianPackage, cacheDir: string): Promise<string> {
  const dir = join(cacheDir, 'unpacked', fileVersion(pkg));
  if ((await stat(dir).catch(() => undefined))?.isDirectory()) return dir;
  const deb = await downloadPackage(pkg, join(cacheDir, 'debs'));
  await mkdir(join(cacheDir, 'unpacked'), { recursive: true });
  const temp = await mkdtemp(`${dir}.tmp-`);
  try {
    await extractPackage(deb, temp);
    await rename(temp, dir).catch((err: unknown) => {
      // Another build unpacked the same package first; its files are the same.
      if (!(err as NodeJS.ErrnoException).code?.match(/^(EEXIST|ENOTEMPTY)$/)) throw err;
    });
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
  return dir;
}

function debFilePrefix(pkg: DebianPackage): string {
  // apt-get download writes name_version_arch.deb.
  return `${fileVersion(pkg)}_`;
}

/** Downloads the .deb into `dir` unless it is already there; returns its path. */
export async function downloadPackage(pkg: DebianPackage, dir: string): Promise<string> {
  const find = async (): Promise<string | undefined> =>
    (await readdir(dir)).find((f) => f.startsWith(debFilePrefix(pkg)) && f.endsWith('.deb'));
  const existing = await find();
  if (existing) return join(dir, existing);
  // Download beside the cache, then rename in: concurrent builds never see half a file.
  const temp = await mkdtemp(join(dir, '.download-'));
  try {
    await runCommand('apt-get', ['download', '-q', `${pkg.name}=${pkg.version}`], { cwd: temp });
    const downloaded = (await readdir(temp)).find((f) => f.endsWith('.deb'));
    if (!downloaded) {
      throw new Error(`apt-get download ${pkg.name}=${pkg.version} left no .deb in ${temp}`);
    }
    await rename(join(temp, downloaded), join(dir, downloaded));
    return join(dir, downloaded);
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/** Unpacks a .deb's files (never installs it, runs none of its scripts). */
export async function extractPackage(deb: string, dest: string): Promise<void> {
  await runCommand('dpkg-deb', ['-x', deb, dest]);
}
