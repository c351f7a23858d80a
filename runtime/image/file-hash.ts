import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

const stampsSchema = z.record(
  z.string(),
  z.object({ size: z.number(), mtimeMs: z.number(), ino: z.number(), sha256: z.string() }),
);

/**
 * SHA-256 of input files, remembered by (size, mtime, inode) in the cache
 * directory: hashing the 127 MB Node binary on every `sandbox run` would cost
 * more than the rest of the cache check.
 */
export async function hashFiles(paths: readonly string[], cacheDir: string): Promise<string[]> {
  const stampPath = join(cacheDir, 'file-hashes.json');
  let stamps: z.infer<typeof stampsSchema> = {};
  try {
    stamps = stampsSchema.parse(JSON.parse(await readFile(stampPath, 'utf8')));
  } catch {
    // No stamps yet (or unreadable): hash everything.
  }
  let changed = false;
  const hashes: string[] = [];
  for (const path of paths) {
    const info = await stat(path);
    const known = stamps[path];
    if (
      known &&
      known.size === info.size &&
      known.mtimeMs === info.mtimeMs &&
      known.ino === info.ino
    ) {
      hashes.push(known.sha256);
      continue;
    }
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    const sha256 = hash.digest('hex');
    stamps[path] = { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino, sha256 };
    changed = true;
    hashes.push(sha256);
  }
  if (changed) {
    const temp = `${stampPath}.${process.pid}`;
    await writeFile(temp, JSON.stringify(stamps));
    await rename(temp, stampPath);
  }
  return hashes;
}
