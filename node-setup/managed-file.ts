import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';

/** Beside each file `edgebox node enable` rewrites: the original itself (renamed, so mode, owner and bytes are kept). */
export const ORIGINAL_SUFFIX = '.edgebox-orig';
/** Beside a file `edgebox node enable` created: says there was none, so `disable` removes it. */
export const ABSENT_SUFFIX = '.edgebox-absent';

/** What a node file held before `edgebox node enable` first touched it. */
export type Original = { kind: 'kept'; path: string } | { kind: 'absent' } | { kind: 'untouched' };

/**
 * One node file `edgebox node enable` may rewrite. Enabling keeps the
 * original beside it once (a second enable reads the kept original, so it is
 * never overwritten by an already rewritten file); disabling puts it back by
 * rename, byte for byte.
 */
export class ManagedFile {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  get originalPath(): string {
    return this.path + ORIGINAL_SUFFIX;
  }

  get absentMarkerPath(): string {
    return this.path + ABSENT_SUFFIX;
  }

  /** What enable found there first, if it has run. */
  original(): Original {
    if (existsSync(this.originalPath)) return { kind: 'kept', path: this.originalPath };
    if (existsSync(this.absentMarkerPath)) return { kind: 'absent' };
    return { kind: 'untouched' };
  }

  /** The text enable's rewrite starts from: the kept original once enabled, else the file as it is (undefined: none). */
  baseText(): string | undefined {
    const original = this.original();
    if (original.kind === 'kept') return readFileSync(original.path, 'utf8');
    if (original.kind === 'absent') return undefined;
    return existsSync(this.path) ? readFileSync(this.path, 'utf8') : undefined;
  }

  /** The file as it is now (undefined: none). */
  currentText(): string | undefined {
    return existsSync(this.path) ? readFileSync(this.path, 'utf8') : undefined;
  }

  /** Keeps the original (first time only) and writes `text` in its place, atomically. */
  write(text: string): void {
    const original = this.original();
    if (original.kind === 'untouched') {
      if (existsSync(this.path)) {
        renameSync(this.path, this.originalPath);
      } else {
        mkdirSync(dirname(this.path), { recursive: true });
        writeFileSync(this.absentMarkerPath, '');
      }
    }
    const mode = existsSync(this.originalPath) ? statSync(this.originalPath).mode & 0o7777 : 0o644;
    const temporary = `${this.path}.edgebox-new`;
    writeFileSync(temporary, text);
    chmodSync(temporary, mode);
    renameSync(temporary, this.path);
  }

  /** Puts back what enable found: the kept original, or no file. False when enable never touched it. */
  restore(): boolean {
    const original = this.original();
    if (original.kind === 'kept') {
      renameSync(original.path, this.path);
      return true;
    }
    if (original.kind === 'absent') {
      rmSync(this.path, { force: true });
      rmSync(this.absentMarkerPath);
      return true;
    }
    return false;
  }
}
