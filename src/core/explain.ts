/**
 * A rollback decision (or a verdict) as a table a person reads in ten seconds: what `canary-gate explain` prints and
 * what a notification carries. Pure formatting of a RollbackDecision (the decision key, or an audit stream entry) or
 * a Verdict; no I/O. Text from the record (who, why, versions, rules) is printed through `printable`: a record written by
 * someone else cannot move the cursor, clear the terminal or forge a line.
 */
import type { RollbackDecision } from './controller.ts';
import { textTable as table } from './text-table.ts';
import { printable } from './text.ts';
import { isSequential, type CheckResult, type Verdict, type VersionFigures } from './verdict.ts';

/** A ratio 0..1 as a percentage with two decimals (`1.25 %`), `-` when not a number. */
export const pct = (ratio: number): string => (Number.isFinite(ratio) ? `${(ratio * 100).toFixed(2)} %` : '-');
/** Milliseconds with one decimal (`48.0 ms`), `-` when not a number. */
export const msText = (ms: number): string => (Number.isFinite(ms) ? `${ms.toFixed(1)} ms` : '-');
const value = (c: CheckResult, v: number): string => (c.unit === 'ms' ? msText(v) : pct(v));

function figuresTable(baseline: VersionFigures, canary: VersionFigures): string {
  const row = (label: string, f: (v: VersionFigures) => string): string[] => [label, f(baseline), f(canary)];
  return table([
    ['', `baseline (${printable(baseline.version)})`, `canary (${printable(canary.version)})`],
    row('requests', (v) => String(v.requests)),
    row('errors', (v) => String(v.errors)),
    row('error ratio', (v) => pct(v.errorRatio)),
    row('p50', (v) => msText(v.p50Ms)),
    row('p95', (v) => msText(v.p95Ms)),
    row('p99', (v) => msText(v.p99Ms)),
    row('pods', (v) => String(v.pods)),
  ]);
}

/** Window-method evidence: the exact test's counts and bounds. */
function windowTable(checks: readonly CheckResult[]): string {
  const rows: string[][] = [['check', 'result', 'observed', 'threshold', 'counted', 'lower bound', 'tolerated', 'alpha', 'needs']];
  for (const c of checks) {
    const e = isSequential(c.evidence) ? undefined : c.evidence;
    rows.push([
      c.check,
      c.outcome,
      value(c, c.observed),
      value(c, c.threshold),
      e ? `${e.count}/${e.requests}` + (e.latencyThresholdMs === null ? '' : ` > ${msText(e.latencyThresholdMs)}`) : '-',
      e ? pct(e.lowerBound) : '-',
      e ? pct(e.tolerated) : '-',
      e ? (e.alpha < 0.01 ? e.alpha.toExponential(1) : e.alpha.toPrecision(2)) : '-',
      e?.neededRequests ? `${e.neededRequests} more` : '-',
    ]);
  }
  return table(rows);
}

const seconds = (s: number | null): string => (s === null ? 'never' : s < 120 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`);

/**
 * Sequential evidence: each check's CUSUM statistic against its fail and warning thresholds (nats; the false alarms
 * within the horizon the fail threshold holds), the counted
 * rate against the healthy and regressed rates, and how long the statistic took to decide: from when it last left
 * zero (the change's estimated start) to when it crossed the fail threshold.
 */
function sequentialTable(checks: readonly CheckResult[], atMs: number): string {
  const rows: string[][] = [
    [
      'check',
      'result',
      'observed',
      'threshold',
      'statistic',
      'fail at',
      'false alarms',
      'warn at',
      'rate',
      'healthy',
      'regressed',
      'decided in',
    ],
  ];
  for (const c of checks) {
    const e = isSequential(c.evidence) ? c.evidence : undefined;
    const decidedIn = e && e.risingSinceMs !== null ? ((e.aboveSinceMs ?? atMs) - e.risingSinceMs) / 1000 : null;
    rows.push([
      c.check,
      c.outcome,
      value(c, c.observed),
      value(c, c.threshold),
      e ? e.statistic.toFixed(2) : '-',
      e ? e.failThreshold.toFixed(2) : '-',
      e ? pct(e.falseAlarmRate) : '-',
      e ? e.warnThreshold.toFixed(2) : '-',
      e ? pct(e.observedRate) : '-',
      e ? pct(e.p0) : '-',
      e ? pct(e.p1) : '-',
      e && e.aboveSinceMs !== null ? seconds(decidedIn) : '-',
    ]);
  }
  return table(rows);
}

/** The two versions' figures, every check with its evidence, then each check's reason in full (lines, no header). */
function evidenceLines(
  baseline: VersionFigures | null,
  canary: VersionFigures | null,
  checks: readonly CheckResult[],
  atMs: number,
): string[] {
  const out: string[] = [];
  if (baseline !== null && canary !== null) out.push('', figuresTable(baseline, canary));
  if (checks.length > 0) {
    const sequential = checks.some((c) => isSequential(c.evidence));
    out.push('', sequential ? sequentialTable(checks, atMs) : windowTable(checks), '');
    for (const c of checks) out.push(`${c.check}: ${c.evidence ? `${printable(c.evidence.rule)}. ` : ''}${printable(c.reason)}`);
  }
  return out;
}

/**
 * The decision as text: a header (what, when, who, which config), the two versions' figures, every check with its
 * evidence, then each check's reason in full.
 * @returns lines ending with a newline
 */
export function explainDecision(d: RollbackDecision): string {
  const out: string[] = [
    `${d.trigger} rollback at ${printable(d.at)} by ${printable(d.by)}${d.configHash ? ` (config ${d.configHash})` : ''}`,
    `reason: ${printable(d.reason)}`,
  ];
  if (d.trigger === 'automatic') out.push(`after ${d.consecutiveBreaches} failing evaluations in a row`);
  out.push(...evidenceLines(d.baseline, d.canary, d.checks, d.atMs));
  return `${out.join('\n')}\n`;
}

/**
 * A verdict as text, in the decision's layout: a header (its outcome and when its window ended), the reason, the two
 * versions' figures and every check with its evidence.
 * @returns lines ending with a newline
 */
export function explainVerdict(v: Verdict): string {
  const out = [
    `${v.outcome} verdict for the window ending ${new Date(v.atMs).toISOString()}`,
    `reason: ${printable(v.reason)}`,
    ...evidenceLines(v.baseline, v.canary, v.checks, v.atMs),
  ];
  return `${out.join('\n')}\n`;
}
