import Table from 'cli-table3';

/** One line of the benchmark's table: what was measured, next to what it should be. */
export interface BenchRow {
  measurement: string;
  measured: string;
  target: string;
  /** ok / MISSED against the target; '' for reference and breakdown rows. */
  verdict: 'ok' | 'MISSED' | '';
}

export function verdict(ok: boolean): 'ok' | 'MISSED' {
  return ok ? 'ok' : 'MISSED';
}

/** A row for a measurement that could not be made, with the reason in place of a figure. */
export function failedRow(measurement: string, target: string, err: unknown): BenchRow {
  const reason = err instanceof Error ? err.message : String(err);
  return {
    measurement,
    measured: `failed: ${reason.slice(0, 300)}`,
    target,
    verdict: 'MISSED',
  };
}

export function renderTable(rows: readonly BenchRow[]): string {
  const table = new Table({
    head: ['measurement', 'measured', 'target', ''],
    colWidths: [44, 52, 24, 8],
    wordWrap: true,
    style: { head: [], border: [] },
  });
  for (const r of rows) table.push([r.measurement, r.measured, r.target, r.verdict]);
  return table.toString();
}

/** Progress on stderr, so a five-minute run shows where it is without mixing into the table. */
export function progress(text: string): void {
  process.stderr.write(`  hub bench: ${text}\n`);
}
