import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { agentSourceFingerprint } from './agent-bundle.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
let work: string | undefined;

afterAll(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

describe('agent bundle sources', () => {
  it('the compiled build (dist/runtime/image/) fingerprints the same TypeScript sources as `npx edgebox`', async () => {
    // Laid out as `npm run build` does: dist/runtime/image/agent-bundle.js
    // with the source tree beside dist/.
    work = await mkdtemp(join(tmpdir(), 'edgebox-agent-bundle-'));
    await symlink(join(REPO, 'runtime'), join(work, 'runtime'));
    await symlink(join(REPO, 'node_modules'), join(work, 'node_modules'));
    const out = join(work, 'dist/runtime/image');
    await mkdir(out, { recursive: true });
    const source = await readFile(join(REPO, 'runtime/image/agent-bundle.ts'), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    const compiled = join(out, 'agent-bundle.js');
    await writeFile(compiled, outputText);
    await writeFile(join(work, 'package.json'), '{"type":"module"}');

    const fromDist = (await import(pathToFileURL(compiled).href)) as {
      agentSourceFingerprint: () => Promise<string>;
    };
    expect(await fromDist.agentSourceFingerprint()).toBe(await agentSourceFingerprint());
  });
});
