import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadResultSchema, type LoadResult, type LoadSpec } from './load-spec.ts';

const CLIENT = fileURLToPath(new URL('./load-client.ts', import.meta.url));

/** Runs load-client.ts in its own process and returns what it measured. */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.on('error', reject);
    child.on('close', (code) => {
      const parsed =
        code === 0 ? loadResultSchema.safeParse(JSON.parse(out.trim() || 'null')) : undefined;
      if (parsed?.success === true) return resolve(parsed.data);
      reject(
        new Error(
          `load client for ${spec.url} exited ${code}: ${(err || out).trim().slice(0, 500)}`,
        ),
      );
    });
  });
}
