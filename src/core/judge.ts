/**
 * The judge: a pure function from (policy, baseline window, canary window) to a verdict. No clock, no I/O, no logs.
 *
 * Checks and their defaults come from the rollout plans this product serves (see the README, "How the gate decides"):
 * - latency_p95_relative: fail when canary p95 > 1.5 x baseline p95; warn above 1.25 x
 * - error_ratio_relative: fail when canary error ratio > 2 x max(baseline error ratio, floor 0.005): the floor keeps a
 *   baseline without errors from dividing by zero or turning every canary error into a breach
 * - latency_p95_absolute: fail when canary p95 > 500 ms
 * - error_ratio_absolute: fail when canary error ratio > 0.05; warn above 0.005
 *
 * Three methods (policy.statistics.enabled and .method):
 * - **Sequential (default).** One CUSUM statistic per chart of each check of the check table (two charts for the
 *   relative error check; src/core/checks.ts, src/core/detector.ts), advanced once per slot by the evaluator and passed in as `context.detector`: evidence
 *   accumulates across slots for as long as the canary stays bad, a healthy past is forgotten, and the thresholds
 *   follow from policy.statistics.falseRollbackRate over the horizon and policy.statistics.warnRate.
 * - **Window tests (`method: window`, the previous method).** A check fails only when an exact one-sided test over
 *   the rolling window supports the breach at the evaluation's alpha (src/core/statistics.ts: Clopper–Pearson bounds,
 *   distribution-free quantile bounds, Bonferroni spending over the rollout). Error checks test the canary's error
 *   ratio against the tolerated ratio; latency checks test the share of canary requests slower than the threshold
 *   against 5 %. A breach of the point estimate the test does not yet support is `inconclusive`, with the further
 *   canary requests the test needs. A gross error breach (at least {@link GROSS_MIN_ERRORS} errors and a ratio above
 *   policy.statistics.grossErrorRatio) fails at once. A check passes only with minSamples requests of each version.
 * - **Thresholds only (`enabled: false`).** The point estimates against the thresholds, as Flagger and Argo Rollouts
 *   compare them: minimum samples (default 100 requests per version in the window): a canary below it makes every
 *   check inconclusive; a baseline below it makes the relative checks inconclusive while the absolute checks judge.
 * NaN anywhere is inconclusive, never pass.
 */
import { CHECK_TABLE, type SequentialCheckName } from './checks.ts';
import {
  type CheckPlan,
  checkPlans,
  EMPTY_DETECTOR,
  observeSlots,
  sequentialResults,
  type DetectorState,
  type SequentialPolicy,
} from './detector.ts';
import { quantileUpperLevel, sampleRatioPValue, shareAbove, testRateAbove, upperRateBound } from './statistics.ts';
import {
  isSequential,
  noFigures,
  OUTCOME_ORDER,
  toFigures,
  worst,
  type CheckEvidence,
  type CheckResult,
  type NoDataAction,
  type NoDataCause,
  type Outcome,
  type Verdict,
} from './verdict.ts';
import type { SlotCounts, WindowSnapshot } from './window.ts';

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
    /** Relative p50 and p99 multipliers and absolute p50 and p99 lines, µs (0: off; sequential method only). */
    readonly relativeP50: number;
    readonly relativeP99: number;
    readonly absoluteP50Us: number;
    readonly absoluteP99Us: number;
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
  /** What each no-data cause does (README, "No data"). */
  readonly noData: Readonly<Record<NoDataCause, NoDataAction>>;
  /**
   * Sample-ratio mismatch: when the chi-square p-value of the observed canary share against the flag's is below this,
   * the relative checks are inconclusive (0 disables).
   */
  readonly trafficShareAlpha: number;
  /** Fall of the canary's share of traffic below the flag's that fails the throughput check, 0..1 (0: off). */
  readonly throughputDrop: number;
  /** Per sequential check, how long its breach must hold before it fails, ms (absent: at once). */
  readonly forMs: Readonly<Partial<Record<SequentialCheckName, number>>>;
  readonly statistics: {
    /** Statistical checks on; off: thresholds only. */
    readonly enabled: boolean;
    /** `sequential` (CUSUM per check, two for the relative error check; default) or `window` (the previous per-window Bonferroni tests). */
    readonly method: 'sequential' | 'window';
    /** Probability of rolling back a healthy canary within the horizon, 0..1 (sequential). */
    readonly falseRollbackRate: number;
    /** The rollout length the rate covers, ms. */
    readonly horizonMs: number;
    /** Share of a healthy canary's evaluations that may warn, 0..1 (sequential). */
    readonly warnRate: number;
    /** Significance level of each check in one evaluation (statistics.ts evaluationAlpha), 0..1. */
    readonly alpha: number;
    /** A canary error ratio above this (with at least GROSS_MIN_ERRORS errors) fails without waiting for the test, 0..1. */
    readonly grossErrorRatio: number;
  };
}

/** Statistical checks per evaluation: the alpha of an evaluation is shared by them (Bonferroni). */
export const STATISTICAL_CHECKS = 4;
/** Errors a gross breach needs before it fails without the test. */
export const GROSS_MIN_ERRORS = 10;
/** Share of requests above p95 by definition: what a latency check tolerates above its threshold. */
const TAIL_SHARE = 0.05;

export const DEFAULT_JUDGE_POLICY: JudgePolicy = {
  minSamples: 100,
  latency: {
    relativeP95: 1.5,
    warnRelativeP95: 1.25,
    absoluteP95Us: 500_000,
    relativeP50: 0,
    relativeP99: 0,
    absoluteP50Us: 0,
    absoluteP99Us: 0,
  },
  errors: { relativeRatio: 2, baselineFloor: 0.001, absoluteRatio: 0.05, warnRatio: 0.005 },
  throughputDrop: 0,
  forMs: {},
  noData: { noTraffic: 'hold', canaryMissing: 'rollback', baselineMissing: 'hold', redisUnreachable: 'hold' },
  trafficShareAlpha: 0.0005,
  // 1 % false rollbacks over 2 h of 5 s evaluations, shared by 4 checks: 0.01 / 1440 / 4.
  statistics: {
    enabled: true,
    method: 'sequential',
    falseRollbackRate: 0.01,
    horizonMs: 7_200_000,
    warnRate: 0.02,
    alpha: 0.01 / 1440 / STATISTICAL_CHECKS,
    grossErrorRatio: 0.5,
  },
};

/** What the judge knows besides the two windows. */
export interface JudgeContext {
  /** The canary's traffic percentage from the flag key, 0..100; null when unknown (unset, unparsable, unread). */
  readonly flagPercent: number | null;
  /**
   * False when the flag changed within the window (a promotion, a manual change): the window's requests were split
   * under two weights, so the sample-ratio test against the current one is skipped. Absent: steady.
   */
  readonly flagSteady?: boolean;
  /** The sequential statistics after the window's newest slot (sequential method; absent: nothing observed yet). */
  readonly detector?: DetectorState;
  /** The check plans of this window, when the caller already made them (evaluateWindow); made here when absent. */
  readonly plans?: readonly CheckPlan[];
  /** Slot length, ms, for plans made here (absent: {@link DEFAULT_SLOT_MS}). */
  readonly slotMs?: number;
}

/** The default slot length, ms (config `window.slot`, src/config/defaults.ts). */
export const DEFAULT_SLOT_MS = 5000;

/** The sequential method's policy, read from the judge's. */
export function sequentialPolicyOf(p: JudgePolicy): SequentialPolicy {
  return {
    thresholds: {
      latency: {
        relativeP50: p.latency.relativeP50,
        relativeP95: p.latency.relativeP95,
        relativeP99: p.latency.relativeP99,
        absoluteP50Us: p.latency.absoluteP50Us,
        absoluteP95Us: p.latency.absoluteP95Us,
        absoluteP99Us: p.latency.absoluteP99Us,
      },
      errors: { relativeRatio: p.errors.relativeRatio, baselineFloor: p.errors.baselineFloor, absoluteRatio: p.errors.absoluteRatio },
      throughputDrop: p.throughputDrop,
    },
    falseRollbackRate: p.statistics.falseRollbackRate,
    horizonMs: p.statistics.horizonMs,
    warnRate: p.statistics.warnRate,
    forMs: p.forMs,
    minSamples: p.minSamples,
  };
}

/** Whether the policy judges with the sequential detector. */
export const isSequentialPolicy = (p: JudgePolicy): boolean => p.statistics.enabled && p.statistics.method === 'sequential';

const ACTION_OUTCOME: Record<NoDataAction, Outcome> = { hold: 'inconclusive', rollback: 'fail', pass: 'pass' };

const NO_DATA_TEXT: Record<NoDataCause, string> = {
  noTraffic: 'no traffic to either version in the window',
  canaryMissing: 'no slots from any canary pod while the flag gives the canary traffic',
  baselineMissing: 'no slots from any baseline pod',
  redisUnreachable: 'Redis unreachable: the fleet window could not be read',
};

/**
 * The no_data check of a cause: its configured action decides the outcome.
 * @param detail appended to the cause's text
 */
export function noDataCheck(policy: JudgePolicy, cause: NoDataCause, detail = ''): CheckResult {
  const action = policy.noData[cause];
  return {
    check: 'no_data',
    outcome: ACTION_OUTCOME[action],
    observed: Number.NaN,
    threshold: Number.NaN,
    unit: 'ratio',
    reason: `${NO_DATA_TEXT[cause]}${detail}: ${action} (policy.noData.${cause})`,
  };
}

/**
 * The verdict of an evaluation that could not read the window (Redis unreachable): only the no_data check, decided by
 * policy.noData.redisUnreachable.
 */
export function unreadableVerdict(policy: JudgePolicy, atMs: number, error: string): Verdict {
  const check = noDataCheck(policy, 'redisUnreachable', ` (${error})`);
  const none = noFigures('');
  return { outcome: check.outcome, atMs, checks: [check], baseline: none, canary: { ...none }, reason: check.reason };
}

const ms = (us: number): string => `${(us / 1000).toFixed(1)} ms`;
const pct = (ratio: number): string => `${(ratio * 100).toFixed(2)} %`;

function result(
  check: CheckResult['check'],
  outcome: Outcome,
  observed: number,
  threshold: number,
  unit: CheckResult['unit'],
  reason: string,
  evidence?: CheckEvidence,
): CheckResult {
  return evidence === undefined
    ? { check, outcome, observed, threshold, unit, reason }
    : { check, outcome, observed, threshold, unit, reason, evidence };
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
export function judge(
  policy: JudgePolicy,
  baseline: WindowSnapshot,
  canary: WindowSnapshot,
  atMs: number,
  context: JudgeContext = { flagPercent: null },
): Verdict {
  const judged = (): CheckResult[] => judgedChecks(policy, baseline, canary, atMs, context);
  const checks = trafficChecks(policy, baseline, canary, context, judged) ?? judged();
  const outcome = checks.reduce<Outcome>((acc, c) => worst(acc, c.outcome), OUTCOME_ORDER[0]);
  const reason =
    outcome === 'pass'
      ? 'all checks pass'
      : checks
          .filter((c) => c.outcome === outcome)
          .map((c) => c.reason)
          .filter((r, i, all) => all.indexOf(r) === i)
          .join('; ');
  const underpowered = checks.filter((c) => isSequential(c.evidence) && c.evidence.underpowered).map((c) => c.check);
  const verdict: Verdict = { outcome, atMs, checks, baseline: toFigures(baseline), canary: toFigures(canary), reason };
  return underpowered.length > 0 ? { ...verdict, underpowered } : verdict;
}

/** What {@link evaluateWindow} reads of a fleet window besides its snapshots. */
export interface WindowSlots {
  /** The window's slots, oldest first: [firstSlot, lastSlot]. */
  readonly firstSlot: number;
  readonly lastSlot: number;
  readonly slotMs: number;
  /** One slot's counts per version (null: no pod reported it). */
  slotsOf(slotIndex: number): { baseline: SlotCounts | null; canary: SlotCounts | null };
}

/**
 * One evaluation: with the sequential method, observes the window's slots the detector has not seen yet, then
 * judges. The evaluator, the replay and the decision-quality benchmark all evaluate through here.
 * @param detector the statistics so far ({@link EMPTY_DETECTOR} at the start, after a reset and on a new lease)
 * @returns the verdict and the detector to pass to the next evaluation
 */
export function evaluateWindow(
  policy: JudgePolicy,
  detector: DetectorState,
  baseline: WindowSnapshot,
  canary: WindowSnapshot,
  slots: WindowSlots,
  flagPercent: number | null,
  flagSteady = true,
): { verdict: Verdict; detector: DetectorState } {
  const atMs = (slots.lastSlot + 1) * slots.slotMs;
  if (!isSequentialPolicy(policy))
    return { verdict: judge(policy, baseline, canary, atMs, { flagPercent, flagSteady, detector }), detector };
  // The plans serve both the observation and the judging: the window's quantile reads and shares are made once.
  const plans = checkPlans(sequentialPolicyOf(policy), baseline, canary, flagPercent, slots.slotMs);
  const next = observeSlots(plans, detector, slots.firstSlot, slots.lastSlot, slots.slotMs, slots.slotsOf);
  return { verdict: judge(policy, baseline, canary, atMs, { flagPercent, flagSteady, detector: next, plans }), detector: next };
}

/** The checks of the policy's method, before any traffic rule. */
function judgedChecks(
  policy: JudgePolicy,
  baseline: WindowSnapshot,
  canary: WindowSnapshot,
  atMs: number,
  context: JudgeContext,
): CheckResult[] {
  if (!policy.statistics.enabled) return thresholdChecks(policy, baseline, canary);
  if (policy.statistics.method === 'window') return testedChecks(policy, baseline, canary);
  const sequential = sequentialPolicyOf(policy);
  const plans = context.plans ?? checkPlans(sequential, baseline, canary, context.flagPercent, context.slotMs ?? DEFAULT_SLOT_MS);
  return sequentialResults(sequential, plans, context.detector ?? EMPTY_DETECTOR, atMs);
}

/** Checks that compare the versions: held on a sample-ratio mismatch, replaced by no_data without a baseline. */
const RELATIVE: ReadonlySet<string> = new Set(CHECK_TABLE.filter((row) => row.needsBaseline).map((row) => row.name));

/**
 * The checks when the traffic itself is the problem, or null to judge as usual:
 * - neither version has requests: only no_data (noTraffic);
 * - no canary pod reported while the flag gives it traffic: only no_data (canaryMissing); with the flag at 0 %,
 *   unset or unreadable, no rollout is under way: only no_data, held whatever the action;
 * - no baseline pod reported: the relative checks give way to no_data (baselineMissing), the absolute ones judge;
 * - the observed canary share contradicts the flag's (sample-ratio mismatch): the relative checks are inconclusive
 *   and a traffic_share check says why; the absolute checks judge, since they do not compare the versions. Not tested
 *   while the flag changed within the window (`flagSteady: false`): the share then mixes two weights, and holding the
 *   relative checks would blind the gate for a window after every promotion. The sequential checks stay exact
 *   across a weight change, since they condition on each slot's requests of both versions.
 */
function trafficChecks(
  policy: JudgePolicy,
  baseline: WindowSnapshot,
  canary: WindowSnapshot,
  context: JudgeContext,
  judged: () => CheckResult[],
): CheckResult[] | null {
  const flag = context.flagPercent;
  if (!(baseline.requests > 0) && !(canary.requests > 0)) return [noDataCheck(policy, 'noTraffic')];
  if (canary.slotsReported === 0) {
    if (flag === null || flag === 0) {
      const why = flag === null ? 'the flag is unset or not a percentage' : 'the flag gives the canary 0 %';
      return [
        {
          ...noDataCheck(policy, 'canaryMissing'),
          outcome: 'inconclusive',
          reason: `no slots from any canary pod; ${why}: no rollout to judge`,
        },
      ];
    }
    return [noDataCheck(policy, 'canaryMissing', ` (flag ${flag} %)`)];
  }
  if (baseline.slotsReported === 0) return [noDataCheck(policy, 'baselineMissing'), ...judged().filter((c) => !RELATIVE.has(c.check))];
  if (policy.trafficShareAlpha > 0 && flag !== null && flag > 0 && flag < 100 && context.flagSteady !== false) {
    const total = baseline.requests + canary.requests;
    const p = sampleRatioPValue(canary.requests, total, flag / 100);
    if (p < policy.trafficShareAlpha) {
      const share: CheckResult = {
        check: 'traffic_share',
        outcome: 'inconclusive',
        observed: canary.requests / total,
        threshold: flag / 100,
        unit: 'ratio',
        reason: `sample-ratio mismatch: the canary has ${pct(canary.requests / total)} of ${total} requests, the flag gives it ${flag} % (chi-square p = ${sci(p)} < ${policy.trafficShareAlpha}); the router does not split as configured, so the versions are not compared`,
      };
      return [
        share,
        ...judged().map((c) =>
          RELATIVE.has(c.check) && c.outcome !== 'inconclusive'
            ? { ...c, outcome: 'inconclusive' as const, reason: `${c.reason} (held: sample-ratio mismatch)` }
            : c,
        ),
      ];
    }
  }
  return null;
}

/** The point estimates against the thresholds (policy.statistics.enabled = false). */
function thresholdChecks(policy: JudgePolicy, baseline: WindowSnapshot, canary: WindowSnapshot): CheckResult[] {
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
      checks.push(
        result(
          'latency_p95_relative',
          'inconclusive',
          canary.p95Us / 1000,
          threshold / 1000,
          'ms',
          canaryShort ? canaryTooFew : baselineTooFew,
        ),
      );
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
      checks.push(
        result('error_ratio_relative', 'inconclusive', canary.errorRatio, threshold, 'ratio', canaryShort ? canaryTooFew : baselineTooFew),
      );
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

  return checks;
}

const sci = (x: number): string => (x < 0.01 ? x.toExponential(1) : x.toPrecision(2));

/**
 * Outcome of a tested check. `fail` needs a significant test (or a gross breach); a point-estimate breach without it
 * is `inconclusive`; `pass` and `warn` need `enough` samples, else `inconclusive`.
 */
function testedOutcome(significant: boolean, gross: boolean, pointBreach: boolean, warn: boolean, enough: boolean): Outcome {
  if (significant || gross) return 'fail';
  if (pointBreach || !enough) return 'inconclusive';
  return warn ? 'warn' : 'pass';
}

/** The reason's tail: the test's verdict in words. */
function testedWords(outcome: Outcome, gross: boolean, e: CheckEvidence, enough: boolean, minSamples: number): string {
  const bound = `lower bound ${pct(e.lowerBound)} vs tolerated ${pct(e.tolerated)} at alpha ${sci(e.alpha)}`;
  if (gross) return `gross breach: ${e.count} of ${e.requests} canary requests`;
  if (outcome === 'fail') return `supported: ${bound}`;
  if (outcome === 'inconclusive' && e.neededRequests !== null && e.neededRequests > 0) {
    return `not yet supported: ${bound}; about ${e.neededRequests} more canary requests at this rate would decide it`;
  }
  if (!enough) return `too few requests to pass (minimum ${minSamples} per version)`;
  return bound;
}

/** The bounded-error checks (policy.statistics.enabled). */
function testedChecks(policy: JudgePolicy, baseline: WindowSnapshot, canary: WindowSnapshot): CheckResult[] {
  const { latency, errors, minSamples } = policy;
  const alpha = policy.statistics.alpha;
  const nC = canary.requests;
  const nB = baseline.requests;
  const hasCanary = nC > 0;
  const hasBaseline = nB > 0;
  const enoughCanary = nC >= minSamples;
  const enoughBoth = enoughCanary && nB >= minSamples;
  const noData = (check: CheckResult['check'], unit: CheckResult['unit'], observed: number, threshold: number, who: string): CheckResult =>
    result(check, 'inconclusive', observed, threshold, unit, `${who} has no requests in the window`);
  const checks: CheckResult[] = [];

  // Relative latency: the share of canary requests slower than ratio x (upper bound of the baseline p95).
  {
    const pointThresholdUs = latency.relativeP95 * baseline.p95Us;
    const level = quantileUpperLevel(nB, 0.95, alpha / 2);
    if (!hasCanary || !hasBaseline) {
      checks.push(noData('latency_p95_relative', 'ms', canary.p95Us / 1000, pointThresholdUs / 1000, hasCanary ? 'baseline' : 'canary'));
    } else if (Number.isNaN(level)) {
      checks.push(
        result(
          'latency_p95_relative',
          'inconclusive',
          canary.p95Us / 1000,
          pointThresholdUs / 1000,
          'ms',
          `baseline has ${nB} requests: too few to bound its p95 at alpha ${sci(alpha / 2)}`,
        ),
      );
    } else {
      const thresholdUs = latency.relativeP95 * baseline.quantileUs(level);
      const count = Math.round(shareAbove(canary.quantileUs, thresholdUs) * nC);
      const test = testRateAbove(count, nC, TAIL_SHARE, alpha / 2);
      const evidence: CheckEvidence = {
        rule: `share of canary requests slower than ${latency.relativeP95} x the baseline p95's upper bound above ${pct(TAIL_SHARE)}`,
        count,
        requests: nC,
        latencyThresholdMs: thresholdUs / 1000,
        tolerated: TAIL_SHARE,
        lowerBound: test.lowerBound,
        alpha: alpha / 2,
        neededRequests: test.neededTrials,
      };
      const pointBreach = canary.p95Us > pointThresholdUs;
      const warn = latency.warnRelativeP95 > 0 && canary.p95Us > latency.warnRelativeP95 * baseline.p95Us;
      const outcome = testedOutcome(test.significant, false, pointBreach, warn, enoughBoth);
      const words = testedWords(outcome, false, evidence, enoughBoth, minSamples);
      const reason = `canary p95 ${ms(canary.p95Us)} vs ${latency.relativeP95} x baseline p95 ${ms(baseline.p95Us)} = ${ms(pointThresholdUs)}; ${count} of ${nC} canary requests slower than ${ms(thresholdUs)}: ${words}`;
      checks.push(result('latency_p95_relative', outcome, canary.p95Us / 1000, pointThresholdUs / 1000, 'ms', reason, evidence));
    }
  }

  // Relative errors: the canary's error ratio against ratio x max(upper bound of the baseline's, floor).
  {
    const pointThreshold = errors.relativeRatio * Math.max(baseline.errorRatio, errors.baselineFloor);
    if (!hasCanary || !hasBaseline) {
      checks.push(noData('error_ratio_relative', 'ratio', canary.errorRatio, pointThreshold, hasCanary ? 'baseline' : 'canary'));
    } else {
      const tolerated = Math.min(1, errors.relativeRatio * Math.max(upperRateBound(baseline.errors, nB, alpha / 2), errors.baselineFloor));
      const test = testRateAbove(canary.errors, nC, tolerated, alpha / 2);
      const evidence: CheckEvidence = {
        rule: `canary error ratio above ${errors.relativeRatio} x max(the baseline's upper bound, floor ${pct(errors.baselineFloor)})`,
        count: canary.errors,
        requests: nC,
        latencyThresholdMs: null,
        tolerated,
        lowerBound: test.lowerBound,
        alpha: alpha / 2,
        neededRequests: test.neededTrials,
      };
      const gross = canary.errors >= GROSS_MIN_ERRORS && canary.errorRatio > policy.statistics.grossErrorRatio;
      const outcome = testedOutcome(test.significant, gross, canary.errorRatio > pointThreshold, false, enoughBoth);
      const reason = `canary error ratio ${pct(canary.errorRatio)} (${canary.errors}/${nC}) vs ${errors.relativeRatio} x max(baseline ${pct(baseline.errorRatio)}, floor) = ${pct(pointThreshold)}: ${testedWords(outcome, gross, evidence, enoughBoth, minSamples)}`;
      checks.push(result('error_ratio_relative', outcome, canary.errorRatio, pointThreshold, 'ratio', reason, evidence));
    }
  }
  if (!hasCanary) {
    checks.push(noData('latency_p95_absolute', 'ms', canary.p95Us / 1000, latency.absoluteP95Us / 1000, 'canary'));
  } else {
    const count = Math.round(shareAbove(canary.quantileUs, latency.absoluteP95Us) * nC);
    const test = testRateAbove(count, nC, TAIL_SHARE, alpha);
    const evidence: CheckEvidence = {
      rule: `share of canary requests slower than ${ms(latency.absoluteP95Us)} above ${pct(TAIL_SHARE)}`,
      count,
      requests: nC,
      latencyThresholdMs: latency.absoluteP95Us / 1000,
      tolerated: TAIL_SHARE,
      lowerBound: test.lowerBound,
      alpha,
      neededRequests: test.neededTrials,
    };
    const outcome = testedOutcome(test.significant, false, canary.p95Us > latency.absoluteP95Us, false, enoughCanary);
    const reason = `canary p95 ${ms(canary.p95Us)} vs ${ms(latency.absoluteP95Us)}; ${count} of ${nC} canary requests slower: ${testedWords(outcome, false, evidence, enoughCanary, minSamples)}`;
    checks.push(result('latency_p95_absolute', outcome, canary.p95Us / 1000, latency.absoluteP95Us / 1000, 'ms', reason, evidence));
  }
  if (!hasCanary) {
    checks.push(noData('error_ratio_absolute', 'ratio', canary.errorRatio, errors.absoluteRatio, 'canary'));
  } else {
    const test = testRateAbove(canary.errors, nC, errors.absoluteRatio, alpha);
    const evidence: CheckEvidence = {
      rule: `canary error ratio above ${pct(errors.absoluteRatio)}`,
      count: canary.errors,
      requests: nC,
      latencyThresholdMs: null,
      tolerated: errors.absoluteRatio,
      lowerBound: test.lowerBound,
      alpha,
      neededRequests: test.neededTrials,
    };
    const gross = canary.errors >= GROSS_MIN_ERRORS && canary.errorRatio > policy.statistics.grossErrorRatio;
    const warn = errors.warnRatio > 0 && canary.errorRatio > errors.warnRatio;
    const outcome = testedOutcome(test.significant, gross, canary.errorRatio > errors.absoluteRatio, warn, enoughCanary);
    const reason = `canary error ratio ${pct(canary.errorRatio)} (${canary.errors}/${nC}) vs ${pct(errors.absoluteRatio)}${outcome === 'warn' ? ` (warn above ${pct(errors.warnRatio)})` : ''}: ${testedWords(outcome, gross, evidence, enoughCanary, minSamples)}`;
    checks.push(result('error_ratio_absolute', outcome, canary.errorRatio, errors.absoluteRatio, 'ratio', reason, evidence));
  }
  return checks;
}
