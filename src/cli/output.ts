/**
 * How the `rpcnet` command prints: aligned tables for people, one JSON document for scripts
 * (`--json`). Kept apart so that every command prints the same way.
 * @module
 */

/** Prints `rows` under `headers` as a left-aligned table (two spaces between columns). */
export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  console.log(line(headers));
  for (const row of rows) console.log(line(row));
}

/** Prints `value` as one line of JSON. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value));
}
