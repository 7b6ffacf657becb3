/** Text reports of replay and tune, for people. Pure formatting. */
import type { TuneRow } from './tune.ts';
import type { ReplayResult } from './replay.ts';
import { textTable } from '../core/text-table.ts';

/** A replay: the counts, each change of outcome with its reason, and the rollback (or its absence). */
export function replayReport(r: ReplayResult, canary: string): string {
  const o = r.outcomes;
  const lines = [
    `${r.recording}: ${r.evaluations} evaluations (pass ${o.pass}, warn ${o.warn}, inconclusive ${o.inconclusive}, fail ${o.fail})${r.corrupt ? `, ${r.corrupt} corrupt payloads skipped` : ''}`,
    ...r.transitions.map((t) => `  ${t}`),
    r.decision === null
      ? `${canary}: never rolled back`
      : `${canary}: rolled back after ${r.rollbackAfterS!.toFixed(1)} s (slot ${r.rollbackSlot})`,
  ];
  return `${lines.join('\n')}\n`;
}

/** The tune table, best setting first. */
export function tuneReport(rows: readonly TuneRow[], healthy: number, regressed: number): string {
  const header = [
    'statistics',
    'p95 x',
    'errors x',
    'streak',
    `false rollbacks (of ${healthy})`,
    `missed (of ${regressed})`,
    'median detection',
  ];
  const body = rows.map((r) => [
    r.statistics ? 'on' : 'off',
    String(r.relativeP95),
    String(r.relativeErrorRatio),
    String(r.consecutiveBreaches),
    String(r.falseRollbacks),
    String(r.missedRollbacks),
    r.medianDetectionS === null ? '-' : `${r.medianDetectionS.toFixed(1)} s`,
  ]);
  return `${textTable([header, ...body])}\n`;
}
