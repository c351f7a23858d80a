import Table from 'cli-table3';

/** Where the answer the client saw came from: the hub's `X-Edgebox-Source`, or neither. */
export type DemoSource = 'upstream' | 'cache' | '-';

export interface TimelineEntry {
  /** Milliseconds since the demo started. */
  atMs: number;
  step: string;
  saw: string;
  source: DemoSource;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

/**
 * What happened, in order, as the newcomer watching the demo should read it:
 * each entry is printed as it happens and again in the closing table.
 */
export class Timeline {
  readonly entries: TimelineEntry[] = [];
  readonly #startedAt: number;
  readonly #out: NodeJS.WritableStream;

  constructor(out: NodeJS.WritableStream, startedAt = performance.now()) {
    this.#out = out;
    this.#startedAt = startedAt;
  }

  elapsedMs(): number {
    return performance.now() - this.#startedAt;
  }

  record(step: string, saw: string, source: DemoSource): void {
    const entry = { atMs: this.elapsedMs(), step, saw, source };
    this.entries.push(entry);
    this.#out.write(
      `${seconds(entry.atMs).padStart(6)}  ${step.padEnd(18)} ${saw}${source === '-' ? '' : `  [${source}]`}\n`,
    );
  }

  /** Free text between steps (what is about to happen), not part of the table. */
  say(text: string): void {
    this.#out.write(`\n${text}\n`);
  }

  /** The timeline as a table as wide as the terminal (100 columns when not a terminal). */
  table(columns = 100): string {
    const fixed = 8 + 20 + 10 + 5; // time, step, source, borders
    const table = new Table({
      head: ['time', 'step', 'what the client saw', 'source'],
      colWidths: [8, 20, Math.max(30, columns - fixed), 10],
      wordWrap: true,
      style: { head: [], border: [] },
    });
    for (const e of this.entries) table.push([seconds(e.atMs), e.step, e.saw, e.source]);
    return table.toString();
  }
}
