/**
 * The yardstick of the decision-quality benchmark: a CUSUM that knows the truth. It is told the canary's true healthy
 * and regressed rates (which no gate can know) and updates once per 5 s slot, as the gate's detector does:
 * - error regressions: a Bernoulli CUSUM on the canary's requests, event = error, p0 = the true healthy error rate,
 *   p1 = the true regressed rate;
 * - latency regressions: a Bernoulli CUSUM on "canary request slower than the TRUE baseline p95", p0 = 5 %,
 *   p1 = the true share slower than it under the regression.
 * Page's CUSUM is optimal for a known change (Lorden 1971, Moustakides 1986), so no gate that has to estimate the
 * rates can detect faster at the same false-alarm rate. Its threshold h is calibrated by simulation: the 99th
 * percentile of the statistic's maximum over the 2 h horizon of A/A rollouts, so 1 % of healthy rollouts roll back.
 */
import { binomialLlr, cusumStep } from '../src/core/sequential.ts';
import type { SlotCounts } from '../src/core/window.ts';
import { lawCdf, lawQuantile, lawsOf, type FleetParams, type SyntheticRun } from './synthetic-fleet.ts';

/** What the oracle counts and the rates it knows. */
export interface OracleTuning {
  /** `errors` counts canary errors; `latency` counts canary requests slower than `thresholdUs`. */
  readonly kind: 'errors' | 'latency';
  /** The true baseline p95, µs (latency), else null. */
  readonly thresholdUs: number | null;
  readonly p0: number;
  readonly p1: number;
}

/**
 * The oracle for a regression of `factor` on `kind` in this fleet (its regression field is ignored).
 * @param factor error-rate or latency multiplier, > 1
 */
export function oracleTuning(params: FleetParams, kind: 'errors' | 'latency', factor: number): OracleTuning {
  if (kind === 'errors') {
    const p0 = params.baselineErrorRatio;
    return { kind, thresholdUs: null, p0, p1: Math.min(1 - 1e-9, p0 * factor) };
  }
  const { healthy, regressed } = lawsOf({ ...params, regression: { atSlot: 0, errorFactor: 1, latencyFactor: factor } });
  const thresholdUs = lawQuantile(healthy, 0.95);
  return { kind, thresholdUs, p0: 0.05, p1: 1 - lawCdf(regressed, thresholdUs) };
}

/** The oracle's log-likelihood ratio of one canary slot (0 when the canary had no requests). */
export function oracleLlr(t: OracleTuning, canary: SlotCounts | null): number {
  if (canary === null) return 0;
  const events = t.kind === 'errors' ? canary.errors : canary.countAbove(t.thresholdUs!);
  return binomialLlr(events, canary.requests, t.p0, t.p1);
}

/**
 * Runs every tuning's CUSUM over slots [0, slots) of a replay.
 * @returns per tuning, the maximum of its statistic over the slots (nats)
 */
export function oracleMaxima(run: SyntheticRun, tunings: readonly OracleTuning[], slots: number): number[] {
  const statistic = tunings.map(() => 0);
  const max = tunings.map(() => 0);
  for (let slot = 0; slot < slots; slot++) {
    const { canary } = run.slotsOf(slot);
    for (let k = 0; k < tunings.length; k++) {
      statistic[k] = cusumStep(statistic[k]!, oracleLlr(tunings[k]!, canary));
      if (statistic[k]! > max[k]!) max[k] = statistic[k]!;
    }
  }
  return max;
}

/**
 * The first slot in [0, slots) at whose end the oracle's statistic reaches `h`, or null.
 */
export function oracleRollbackSlot(run: SyntheticRun, tuning: OracleTuning, h: number, slots: number): number | null {
  let statistic = 0;
  for (let slot = 0; slot < slots; slot++) {
    statistic = cusumStep(statistic, oracleLlr(tuning, run.slotsOf(slot).canary));
    if (statistic >= h) return slot;
  }
  return null;
}

/**
 * The threshold that `rate` of the A/A maxima reach: the midpoint between the largest maximum that must stay below it
 * (the one below the top round(rate x n)) and the next larger maximum, so that at most round(rate x n) of these
 * rollouts reach it. When no larger maximum exists (e.g. every A/A statistic stayed at 0, as it does for a 2x latency
 * oracle at 50 % share), that maximum + ln(1 / rate): the level a likelihood-ratio CUSUM exceeds at a given slot with
 * probability at most `rate` (Kingman's bound, see src/core/sequential.ts).
 * @param maxima per A/A rollout, the statistic's maximum over the horizon
 * @param rate the false-rollback rate, 0..1
 */
export function calibrateThreshold(maxima: readonly number[], rate: number): number {
  const sorted = [...maxima].sort((a, b) => a - b);
  const allowed = Math.min(sorted.length - 1, Math.round(rate * sorted.length));
  const kept = sorted[sorted.length - allowed - 1]!;
  const next = sorted.find((m) => m > kept);
  return next === undefined ? kept + Math.log(1 / rate) : (kept + next) / 2;
}
