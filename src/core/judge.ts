/**
 * The judge: a pure function from (policy, baseline window, canary window) to a verdict. No clock, no I/O, no logs.
 *
 * Checks and their defaults come from the rollout plans this product serves (see the README, "How the gate decides"):
 * - latency_p95_relative: fail when canary p95 > 1.5 x baseline p95; warn above 1.25 x
 * - error_ratio_relative: fail when canary error ratio > 2 x max(baseline error ratio, floor 0.005): the floor keeps a
 *   baseline without errors from dividing by zero or turning every canary error into a breach
 * - latency_p95_absolute: fail when canary p95 > 500 ms
 * - error_ratio_absolute: fail when canary error ratio > 0.05; warn above 0.005
 * Minimum samples (default 100 requests per version in the window): a canary below it makes every check
 * inconclusive; a baseline below it makes the relative checks inconclusive while the absolute checks still judge.
 * NaN anywhere is inconclusive, never pass.
 */
import { OUTCOME_ORDER, toFigures, worst, type CheckResult, type Outcome, type Verdict } from './verdict.ts';
import type { WindowSnapshot } from './window.ts';

/** Thresholds of the judge. Latencies in µs, ratios 0..1, multipliers unitless. */
export interface JudgePolicy {
  /** Requests each version needs in the window before it is judged. */
  readonly minSamples: number;
  readonly latency: {
    /** Fail when canary p95 > this x baseline p95. */
    readonly relativeP95: number;
    /** Warn when canary p95 > this x baseline p95 (0 disables). */
    readonly warnRelativeP95: number;
    /** Fail when canary p95 > this, µs. */
    readonly absoluteP95Us: number;
  };
  readonly errors: {
    /** Fail when canary error ratio > this x max(baseline error ratio, baselineFloor). */
    readonly relativeRatio: number;
    /** Floor of the baseline error ratio in the relative check, 0..1. */
    readonly baselineFloor: number;
    /** Fail when canary error ratio > this, 0..1. */
    readonly absoluteRatio: number;
    /** Warn when canary error ratio > this, 0..1 (0 disables). */
    readonly warnRatio: number;
  };
}

export const DEFAULT_JUDGE_POLICY: JudgePolicy = {
  minSamples: 100,
  latency: { relativeP95: 1.5, warnRelativeP95: 1.25, absoluteP95Us: 500_000 },
  errors: { relativeRatio: 2, baselineFloor: 0.005, absoluteRatio: 0.05, warnRatio: 0.005 },
};

const ms = (us: number): string => `${(us / 1000).toFixed(1)} ms`;
const pct = (ratio: number): string => `${(ratio * 100).toFixed(2)} %`;

function result(
  check: CheckResult['check'],
  outcome: Outcome,
  observed: number,
  threshold: number,
  unit: CheckResult['unit'],
  reason: string,
): CheckResult {
  return { check, outcome, observed, threshold, unit, reason };
}

/** Compares a figure with fail and warn thresholds. NaN in the figure or the fail threshold is inconclusive. */
function compare(observed: number, failAbove: number, warnAbove: number): Outcome {
  if (Number.isNaN(observed) || Number.isNaN(failAbove)) return 'inconclusive';
  if (observed > failAbove) return 'fail';
  if (warnAbove > 0 && observed > warnAbove) return 'warn';
  return 'pass';
}

const OPERATOR: Record<Outcome, string> = { pass: '<=', warn: '<=', fail: '>', inconclusive: '?' };

/**
 * Judges the canary against the baseline.
 * @param policy thresholds (see {@link JudgePolicy})
 * @param baseline merged window of the baseline version
 * @param canary merged window of the canary version
 * @param atMs end of the judged window, ms since the epoch (recorded in the verdict, not read from a clock)
 */
export function judge(policy: JudgePolicy, baseline: WindowSnapshot, canary: WindowSnapshot, atMs: number): Verdict {
  const checks: CheckResult[] = [];
  // Negated so that a NaN request count (or minimum) counts as too few: NaN is inconclusive, never pass.
  const canaryShort = !(canary.requests >= policy.minSamples);
  const baselineShort = !(baseline.requests >= policy.minSamples);
  const canaryTooFew = `canary has ${canary.requests} requests in the window, fewer than the minimum ${policy.minSamples}`;
  const baselineTooFew = `baseline has ${baseline.requests} requests in the window, fewer than the minimum ${policy.minSamples}`;
  const { latency, errors } = policy;

  // Relative latency.
  {
    const threshold = latency.relativeP95 * baseline.p95Us;
    if (canaryShort || baselineShort) {
      checks.push(result('latency_p95_relative', 'inconclusive', canary.p95Us / 1000, threshold / 1000, 'ms', canaryShort ? canaryTooFew : baselineTooFew));
    } else {
      const outcome = compare(canary.p95Us, threshold, latency.warnRelativeP95 * baseline.p95Us);
      const factor = outcome === 'warn' ? latency.warnRelativeP95 : latency.relativeP95;
      const reason =
        outcome === 'inconclusive'
          ? `p95 is not a number: canary p95 ${ms(canary.p95Us)}, baseline p95 ${ms(baseline.p95Us)}`
          : `canary p95 ${ms(canary.p95Us)} ${OPERATOR[outcome === 'warn' ? 'fail' : outcome]} ${factor} x baseline p95 ${ms(baseline.p95Us)} = ${ms(factor * baseline.p95Us)}`;
      checks.push(result('latency_p95_relative', outcome, canary.p95Us / 1000, threshold / 1000, 'ms', reason));
    }
  }

  // Relative errors, with the baseline floor.
  {
    const reference = Math.max(baseline.errorRatio, errors.baselineFloor);
    const threshold = errors.relativeRatio * reference;
    if (canaryShort || baselineShort) {
      checks.push(result('error_ratio_relative', 'inconclusive', canary.errorRatio, threshold, 'ratio', canaryShort ? canaryTooFew : baselineTooFew));
    } else {
      const outcome = compare(canary.errorRatio, threshold, 0);
      const floored = baseline.errorRatio < errors.baselineFloor ? ` (floor; baseline ${pct(baseline.errorRatio)})` : '';
      const reason =
        outcome === 'inconclusive'
          ? `error ratio is not a number: canary ${pct(canary.errorRatio)}, baseline ${pct(baseline.errorRatio)}`
          : `canary error ratio ${pct(canary.errorRatio)} ${OPERATOR[outcome]} ${errors.relativeRatio} x max(baseline, floor) ${pct(reference)}${floored} = ${pct(threshold)}`;
      checks.push(result('error_ratio_relative', outcome, canary.errorRatio, threshold, 'ratio', reason));
    }
  }

  // Absolute latency: judged whenever the canary has enough samples, whatever the baseline.
  {
    const outcome = canaryShort ? 'inconclusive' : compare(canary.p95Us, latency.absoluteP95Us, 0);
    const reason = canaryShort
      ? canaryTooFew
      : outcome === 'inconclusive'
        ? `p95 is not a number: canary p95 ${ms(canary.p95Us)}, threshold ${ms(latency.absoluteP95Us)}`
        : `canary p95 ${ms(canary.p95Us)} ${OPERATOR[outcome]} ${ms(latency.absoluteP95Us)}`;
    checks.push(result('latency_p95_absolute', outcome, canary.p95Us / 1000, latency.absoluteP95Us / 1000, 'ms', reason));
  }

  // Absolute errors, with a warning level.
  {
    const outcome = canaryShort ? 'inconclusive' : compare(canary.errorRatio, errors.absoluteRatio, errors.warnRatio);
    const bound = outcome === 'warn' ? errors.warnRatio : errors.absoluteRatio;
    const reason = canaryShort
      ? canaryTooFew
      : outcome === 'inconclusive'
        ? `error ratio is not a number: canary ${pct(canary.errorRatio)}, threshold ${pct(errors.absoluteRatio)}`
        : `canary error ratio ${pct(canary.errorRatio)} ${OPERATOR[outcome === 'warn' ? 'fail' : outcome]} ${pct(bound)}`;
    checks.push(result('error_ratio_absolute', outcome, canary.errorRatio, errors.absoluteRatio, 'ratio', reason));
  }

  const outcome = checks.reduce<Outcome>((acc, c) => worst(acc, c.outcome), OUTCOME_ORDER[0]);
  const reason =
    outcome === 'pass'
      ? 'all checks pass'
      : checks
          .filter((c) => c.outcome === outcome)
          .map((c) => c.reason)
          .filter((r, i, all) => all.indexOf(r) === i)
          .join('; ');
  return { outcome, atMs, checks, baseline: toFigures(baseline), canary: toFigures(canary), reason };
}
