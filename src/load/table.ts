/**
 * Figures for people, in one place: numbers in ms and percent, a run's tables (one row per step and a total, one row
 * per version the responses named) and their text form. The HTML report renders the same tables; the demo's lines
 * use the same number helpers.
 */
import type { LoadResult } from './result.ts';

/** `v` with `digits` decimals, `-` when it is not finite; padded on the left to `width`. */
export const fixed = (v: number, digits: number, width = 0): string => (Number.isFinite(v) ? v.toFixed(digits) : '-').padStart(width);

/** A latency, ms: two decimals under 10 ms, one above; `-` when not finite. */
export const ms = (v: number): string => fixed(v, v < 10 ? 2 : 1);

/** A ratio 0..1 as a percentage with two decimals (`1.25 %`); `-` when not finite. */
export const pct = (ratio: number): string => (Number.isFinite(ratio) ? `${fixed(ratio * 100, 2)} %` : '-');

export interface Table {
  readonly header: readonly string[];
  readonly rows: ReadonlyArray<readonly string[]>;
}

/** A run's two tables: steps with the total, and versions (no rows when no response named a version). */
export function resultTables(result: LoadResult): { steps: Table; versions: Table } {
  return {
    steps: {
      header: ['step', 'offered rps', 'requests', 'rps', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'non-2xx'],
      rows: [...result.steps, result.totals].map((s) => [
        s.label,
        ...[s.offeredRps, s.requests, s.achievedRps].map(String),
        ...[s.p50Ms, s.p95Ms, s.p99Ms].map(ms),
        ...[s.errors, s.non2xx].map(String),
      ]),
    },
    versions: {
      header: ['version', 'requests', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'error ratio'],
      rows: Object.entries(result.versions).map(([v, f]) => [
        v,
        String(f.requests),
        ...[f.p50Ms, f.p95Ms, f.p99Ms].map(ms),
        String(f.errors),
        pct(f.errorRatio),
      ]),
    },
  };
}

/** Pads columns: text left-aligned in the first column, numbers right-aligned in the others. */
export function formatTable({ header, rows }: Table): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The end-of-run summary as text: the tables, failed requests, the flag and the demo (ends with a newline). */
export function summaryTable(result: LoadResult): string {
  const { steps, versions } = resultTables(result);
  const out = [
    `load profile ${result.profile.name} against ${result.target}: ${result.elapsedS} s, ${result.stopReason}`,
    '',
    formatTable(steps),
  ];
  if (versions.rows.length > 0) out.push('', formatTable(versions));
  if (result.totals.failures > 0) out.push('', `failed requests (socket errors, timeouts): ${result.totals.failures}`);
  if (result.flag) {
    out.push('', `flag ${result.flag.key}: ${result.flag.first ?? 'unset'} at start, ${result.flag.last ?? 'unset'} at end`);
    out.push(result.rollback ? `rollback at ${result.rollback.tS} s (flag = ${result.rollback.flag})` : 'no rollback during the run');
  }
  if (result.demo) {
    const { regressAtS, routed } = result.demo;
    const regressed = regressAtS === null ? 'v2 did not regress' : `v2 regressed at ${regressAtS.toFixed(1)} s`;
    out.push(`demo: ${regressed}; router sent v1 ${routed.baseline}, v2 ${routed.canary}`);
  }
  return `${out.join('\n')}\n`;
}
