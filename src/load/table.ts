/**
 * The tables a load run ends with, for a terminal: one row per step and a total (requests, achieved rps, p50, p95,
 * p99 in ms, errors, non-2xx), then one row per version the responses named, then the flag and the rollback.
 */
import type { LoadResult } from './run.ts';

const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(v < 10 ? 2 : 1) : '-');
const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(2)} %` : '-');

/** Pads columns: text left-aligned in the first column, numbers right-aligned in the others. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The end-of-run summary as text (several tables and lines, ending with a newline). */
export function summaryTable(result: LoadResult): string {
  const rows = [...result.steps, result.totals].map((s) => [
    s.label,
    String(s.offeredRps),
    String(s.requests),
    String(s.achievedRps),
    ms(s.p50Ms),
    ms(s.p95Ms),
    ms(s.p99Ms),
    String(s.errors),
    String(s.non2xx),
  ]);
  const out = [
    `load profile ${result.profile.name} against ${result.target}: ${result.elapsedS} s, ${result.stopReason}`,
    '',
    formatTable(['step', 'offered rps', 'requests', 'rps', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'non-2xx'], rows),
  ];
  const versions = Object.entries(result.versions);
  if (versions.length > 0) {
    out.push('', formatTable(['version', 'requests', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'error ratio'], versions.map(([v, f]) => [v, String(f.requests), ms(f.p50Ms), ms(f.p95Ms), ms(f.p99Ms), String(f.errors), pct(f.errorRatio)])));
  }
  if (result.totals.failures > 0) out.push('', `failed requests (socket errors, timeouts): ${result.totals.failures}`);
  if (result.flag) {
    out.push('', `flag ${result.flag.key}: ${result.flag.first ?? 'unset'} at start, ${result.flag.last ?? 'unset'} at end`);
    out.push(result.rollback ? `rollback at ${result.rollback.tS} s (flag = ${result.rollback.flag})` : 'no rollback during the run');
  }
  if (result.demo) out.push(`demo: ${result.demo.regressAtS === null ? 'v2 did not regress' : `v2 regressed at ${result.demo.regressAtS.toFixed(1)} s`}; router sent v1 ${result.demo.routed.baseline}, v2 ${result.demo.routed.canary}`);
  return `${out.join('\n')}\n`;
}
