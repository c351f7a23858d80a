import { isDeepStrictEqual } from 'node:util';
import { parse, stringify, TomlError } from 'smol-toml';
import { NodeFileError } from './config-error.ts';

/** The handler RuntimeClass `edgebox` names, and the shim containerd starts for it (DESIGN: sandbox runtime contract). */
export const RUNTIME_HANDLER = 'edgebox';
export const RUNTIME_TYPE = 'io.containerd.edgebox.v2';

/** Where the CRI plugin keeps its runtimes, by config schema version (containerd 1.x: 2; 2.x: 3). */
const CRI_RUNTIMES: Readonly<Record<number, readonly string[]>> = {
  2: ['plugins', 'io.containerd.grpc.v1.cri', 'containerd', 'runtimes'],
  3: ['plugins', 'io.containerd.cri.v1.runtime', 'containerd', 'runtimes'],
};

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date)
  );
}

/** A table as smol-toml makes them (no prototype), so a parsed copy compares equal. */
function emptyTable(): Table {
  return Object.create(null) as Table;
}

function parseToml(file: string, text: string): Table {
  try {
    // Integers as bigint: a float written 1.0 must not come back as the integer 1 unnoticed.
    return parse(text, { integersAsBigInt: true });
  } catch (err) {
    if (err instanceof TomlError) {
      throw new NodeFileError(file, `not valid TOML (${err.message.split('\n')[0]})`, {
        line: err.line,
        column: err.column,
      });
    }
    throw err;
  }
}

export interface ContainerdChange {
  text: string;
  summary: string;
}

/**
 * Adds the `edgebox` runtime to the CRI plugin's runtime table, keeping every
 * other setting. The file is rewritten from its parsed form (comments and
 * layout are not kept; the original is, beside it) and the result is checked
 * to parse back to the original plus exactly this runtime.
 */
export function addEdgeboxRuntime(file: string, text: string): ContainerdChange {
  const config = parseToml(file, text);
  const version = config['version'];
  const path = typeof version === 'bigint' ? CRI_RUNTIMES[Number(version)] : undefined;
  if (!path) {
    throw new NodeFileError(
      file,
      `config version ${version === undefined ? '(none, i.e. 1)' : String(version)} is not supported: write one with \`containerd config default\` (version 2 or 3)`,
    );
  }
  let table: Table = config;
  for (const key of path) {
    const next = table[key] ?? emptyTable();
    if (!isTable(next)) throw new NodeFileError(file, `${path.join('.')}: ${key} is not a table`);
    table[key] = next;
    table = next;
  }
  const existing = table[RUNTIME_HANDLER] ?? {};
  if (!isTable(existing))
    throw new NodeFileError(file, `runtime ${RUNTIME_HANDLER} is not a table`);
  table[RUNTIME_HANDLER] = Object.assign(emptyTable(), existing, { runtime_type: RUNTIME_TYPE });
  const out = stringify(config);
  if (!isDeepStrictEqual(parseToml(file, out), config)) {
    throw new NodeFileError(
      file,
      'cannot be rewritten without changing one of its values (a float written as an integer?)',
    );
  }
  return {
    text: out,
    summary: `runtime ${RUNTIME_HANDLER} (runtime_type ${RUNTIME_TYPE}) in [${path.map((k) => (k.includes('.') ? `"${k}"` : k)).join('.')}]`,
  };
}
