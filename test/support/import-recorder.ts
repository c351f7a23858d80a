import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * A module to preload with `node --import` that notes, per process, every
 * module URL it resolves. Children that inherit the flag write to the same
 * file, so the pid tells who loaded what: a hub that leaves client-node to a
 * short-lived child, for one.
 */
export class ImportRecorder {
  readonly #log: string;
  /** The `--import` argument's value. */
  readonly hookUrl: string;

  constructor(dir: string) {
    this.#log = join(dir, 'resolved-imports.txt');
    const hook = join(dir, 'record-imports.mjs');
    writeFileSync(
      hook,
      `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context);
    appendFileSync(${JSON.stringify(this.#log)}, process.pid + ' ' + result.url + '\\n');
    return result;
  },
});
`,
    );
    this.hookUrl = pathToFileURL(hook).href;
  }

  /** The module URLs process `pid` resolved that contain `fragment`. */
  resolvedBy(pid: number | undefined, fragment = ''): string[] {
    return this.#lines()
      .filter((line) => line.startsWith(`${pid} `))
      .map((line) => line.slice(line.indexOf(' ') + 1))
      .filter((url) => url.includes(fragment));
  }

  #lines(): string[] {
    const text = existsSync(this.#log) ? readFileSync(this.#log, 'utf8') : '';
    return text.split('\n').filter((line) => line !== '');
  }
}
