/**
 * The detector: one CUSUM statistic per chart of each check of {@link CHECK_TABLE} (most checks run one chart; the
 * relative error check two, src/core/checks.ts), advanced once per slot, and the check results the judge reports
 * from them. A pure state machine: the state goes in, the next state comes out; no clock, no I/O.
 *
 * Per evaluation: `checkPlans` sets each check's hypotheses from the window (the baseline's quantiles, the traffic),
 * `observeSlot` adds each new slot's log-likelihood ratio, `sequentialResults` turns the statistics into outcomes,
 * reading each check from one of its charts ({@link reportedChart}): fail at or above the fail threshold (held for
 * the check's `for` from the first chart's breach), warn at or above the warning threshold,
 * inconclusive while the check cannot run, is underpowered or has seen fewer than minSamples canary requests, else
 * pass. Thresholds and their sources: src/core/sequential.ts.
 */
import { CHECK_TABLE, type CheckModel, type CheckRow, type CheckThresholds, type SequentialCheckName } from './checks.ts';
import { calibratedThreshold } from './arl.ts';
import { upperRateBound } from './statistics.ts';
import {
  bernoulliKl,
  binomialLlr,
  cusumStep,
  failThreshold,
  largestStep,
  llrDrift,
  lundbergExponent,
  secondsToClimb,
  warnThreshold,
} from './sequential.ts';
import type { CheckResult, Outcome, SequentialEvidence } from './verdict.ts';
import type { SlotCounts, WindowSnapshot } from './window.ts';

/** The policy of the sequential checks. */
export interface SequentialPolicy {
  readonly thresholds: CheckThresholds;
  /** Probability of rolling back a healthy canary within `horizonMs`, all checks together, 0..1. */
  readonly falseRollbackRate: number;
  /** Rollout length the false-rollback rate covers, ms. */
  readonly horizonMs: number;
  /** Share of a healthy canary's evaluations that may warn, all checks together, 0..1. */
  readonly warnRate: number;
  /** Per check: how long its statistic must stay above the fail threshold before it fails, ms (absent: 0). */
  readonly forMs: Readonly<Partial<Record<SequentialCheckName, number>>>;
  /** Canary requests a check must have observed before it can pass. */
  readonly minSamples: number;
}

/** One chart's statistic. */
export interface ChartStatistic {
  /** The CUSUM, nats (>= 0). */
  readonly statistic: number;
  /** End of the slot where the statistic last left 0: Page's estimate of when the change began, ms since the epoch. */
  readonly risingSinceMs: number | null;
  /** When the statistic last reached the fail threshold (null while below), ms since the epoch. */
  readonly aboveSinceMs: number | null;
}

/** One check's statistics. */
export interface CheckStatistic {
  /** One per chart, in the model's chart order. */
  readonly charts: readonly ChartStatistic[];
  /** Canary requests in the slots these statistics have observed. */
  readonly canaryRequests: number;
}

export interface DetectorState {
  /** The last slot observed, or null before the first. */
  readonly lastSlot: number | null;
  readonly checks: Readonly<Partial<Record<SequentialCheckName, CheckStatistic>>>;
}

/** A detector that has seen nothing: where a rollout, a reset and a new lease holder start. */
export const EMPTY_DETECTOR: DetectorState = { lastSlot: null, checks: {} };

const ZERO_CHART: ChartStatistic = { statistic: 0, risingSinceMs: null, aboveSinceMs: null };
const ZERO: CheckStatistic = { charts: [], canaryRequests: 0 };

/** A chart's thresholds, nats, and the share of the false-rollback rate its fail threshold holds. */
export interface ChartThresholds {
  readonly fail: number;
  readonly warn: number;
  /** Probability of a false alarm within the horizon the fail threshold is set for, 0..1. */
  readonly rate: number;
}

/** A check's hypotheses and thresholds in the current window. */
export interface CheckPlan {
  readonly row: CheckRow;
  /** The model, or why the check cannot run now. */
  readonly model: CheckModel | string;
  /** Fail and warning thresholds of each of the model's charts (empty without a model). */
  readonly charts: readonly ChartThresholds[];
  /** Expected seconds to detect a regression of the configured size at this traffic, by the first chart (null: never). */
  readonly secondsToDetect: number | null;
  /** No regression of the configured size would be detected within the horizon at this traffic. */
  readonly underpowered: boolean;
}

/**
 * A chart's fail threshold, nats: the h at which its false-alarm probability within the horizon is `rate`, computed on
 * the Markov chain of its per-slot law (src/core/arl.ts), never below the single-test bound ln(1 / rate); Siegmund's
 * closed form (src/core/sequential.ts) starts the search, and stands when the chain gives no answer.
 * @param rate this chart's share of the false-rollback rate, 0..1
 * @param trialsPerS the chart's trials per second in the window
 * @param slotMs the slot length the statistic advances by, ms
 */
export function chartFailThreshold(horizonMs: number, rate: number, p0: number, p1: number, trialsPerS: number, slotMs: number): number {
  const law = { p0, p1, trialsPerSlot: (trialsPerS * slotMs) / 1000 };
  return (
    calibratedThreshold(law, horizonMs / slotMs, rate, Math.log(1 / rate)) ??
    failThreshold(rate, horizonMs / 1000, bernoulliKl(p0, p1) * trialsPerS, 1, largestStep(p0, p1))
  );
}

/**
 * How the false-rollback rate is shared by the charts (README, "How the gate decides"): what a canary like the
 * baseline could spend is what counts. A chart of a check against a line is set for an even share of the whole rate
 * at its own H0 (the line / √2). A canary like the baseline brings events at the baseline's rate, bounded above by
 * its Clopper–Pearson bound q over the window (`CheckModel.baselineCounts`, at level 1 - the even share); below H0,
 * such a chart alarms within T slots with probability at most T e^(-θ h), θ > 1 being Lundberg's exponent at q
 * ({@link lundbergExponent}), and that (at most its share) is what it spends. The charts of the checks against the
 * baseline share what is left equally, never less than the even share: almost all of the rate for a baseline far
 * below the lines. A baseline at or above a line's H0, or without requests, leaves every chart its even share, and
 * then no share is a bound for the absolute chart: a canary like such a baseline trips that line more often.
 * @returns the rate of each chart of each model, in `models` order (empty for a check that cannot run), and the fail
 *   thresholds of the absolute checks' charts (null for the others)
 */
function shareRate(
  policy: Pick<SequentialPolicy, 'falseRollbackRate' | 'horizonMs'>,
  models: ReadonlyArray<{ row: CheckRow; model: CheckModel | string }>,
  slotMs: number,
): { rates: number[][]; fails: Array<number[] | null> } {
  const charts = models.reduce((sum, { row }) => sum + row.charts, 0);
  const even = policy.falseRollbackRate / Math.max(1, charts);
  let spent = 0;
  let relativeCharts = 0;
  const fails: Array<number[] | null> = models.map(({ row, model }) => {
    if (row.needsBaseline) {
      relativeCharts += row.charts;
      return null;
    }
    if (typeof model === 'string') return [];
    const { trialsPerS, p0 } = model.rates;
    const counts = model.baselineCounts;
    const q = counts === undefined ? Number.NaN : upperRateBound(counts.events, counts.trials, even);
    return model.charts.map(({ p1 }) => {
      const fail = chartFailThreshold(policy.horizonMs, even, p0, p1, trialsPerS, slotMs);
      const theta = q >= 0 ? lundbergExponent(q, p0, p1) : 0;
      // θ <= 1: the baseline is at or above H0 (or unknown), where the even share bounds nothing.
      spent += theta > 1 ? Math.min(even, (policy.horizonMs / slotMs) * Math.exp(-theta * fail)) : Number.POSITIVE_INFINITY;
      return fail;
    });
  });
  const relative =
    relativeCharts > 0 && Number.isFinite(spent) ? Math.max(even, (policy.falseRollbackRate - spent) / relativeCharts) : even;
  const rates = models.map(({ row, model }) =>
    typeof model === 'string' ? [] : model.charts.map(() => (row.needsBaseline ? relative : even)),
  );
  return { rates, fails };
}

/**
 * The plan of every enabled check for this window.
 * @param flagPercent the flag's canary percentage 0..100, or null when unknown
 * @param slotMs the slot length, ms: the statistics advance once per slot
 */
export function checkPlans(
  policy: SequentialPolicy,
  baseline: WindowSnapshot,
  canary: WindowSnapshot,
  flagPercent: number | null,
  slotMs: number,
): CheckPlan[] {
  const rows = CHECK_TABLE.filter((row) => row.threshold(policy.thresholds) > 0);
  const horizonS = policy.horizonMs / 1000;
  const charts = rows.reduce((sum, row) => sum + row.charts, 0);
  const warn = warnThreshold(policy.warnRate, charts);
  const models = rows.map((row) => ({
    row,
    model:
      row.needsBaseline && !(baseline.requests > 0)
        ? 'the baseline has no requests in the window'
        : row.model(policy.thresholds, baseline, canary, flagPercent),
  }));
  const { rates, fails } = shareRate(policy, models, slotMs);
  return models.map(({ row, model }, index) => {
    if (typeof model === 'string') return { row, model, charts: [], secondsToDetect: null, underpowered: false };
    const { trialsPerS, p0 } = model.rates;
    const thresholds = model.charts.map(({ p1 }, chart) => {
      const rate = rates[index]![chart]!;
      const fail = fails[index]?.[chart] ?? chartFailThreshold(policy.horizonMs, rate, p0, p1, trialsPerS, slotMs);
      return { fail, warn: Math.min(warn, fail), rate };
    });
    const first = model.charts[0]!;
    const secondsToDetect = secondsToClimb(thresholds[0]!.fail, bernoulliKl(first.p1, p0) * trialsPerS);
    return { row, model, charts: thresholds, secondsToDetect, underpowered: secondsToDetect === null || secondsToDetect > horizonS };
  });
}

/**
 * Adds one slot to every planned check's statistic.
 * @param slotIndex the slot observed; a slot at or before `state.lastSlot` is ignored (each slot counts once)
 * @param slotEndMs end of that slot, ms since the epoch
 * @param baseline, canary the slot's counts per version (null: no pod reported)
 */
export function observeSlot(
  plans: readonly CheckPlan[],
  state: DetectorState,
  slotIndex: number,
  slotEndMs: number,
  baseline: SlotCounts | null,
  canary: SlotCounts | null,
): DetectorState {
  if (state.lastSlot !== null && slotIndex <= state.lastSlot) return state;
  const checks: Partial<Record<SequentialCheckName, CheckStatistic>> = { ...state.checks };
  for (const plan of plans) {
    if (typeof plan.model === 'string') continue;
    const trial = plan.model.slot(baseline, canary);
    if (trial === null) continue;
    const before = checks[plan.row.name] ?? ZERO;
    const charts = plan.charts.map(({ fail }, index) => {
      const was = before.charts[index] ?? ZERO_CHART;
      const statistic = cusumStep(was.statistic, binomialLlr(trial.events, trial.trials, trial.p0, trial.p1[index]!));
      return {
        statistic,
        risingSinceMs: statistic === 0 ? null : was.statistic === 0 ? slotEndMs : was.risingSinceMs,
        aboveSinceMs: statistic >= fail ? (was.aboveSinceMs ?? slotEndMs) : null,
      };
    });
    checks[plan.row.name] = { charts, canaryRequests: before.canaryRequests + trial.canaryRequests };
  }
  return { lastSlot: slotIndex, checks };
}

/**
 * Observes every slot of [firstSlot, lastSlot] not yet observed, oldest first: what an evaluation adds, and what a new
 * lease holder replays from the window it just read.
 * @param slotsOf the counts of a slot per version
 */
export function observeSlots(
  plans: readonly CheckPlan[],
  state: DetectorState,
  firstSlot: number,
  lastSlot: number,
  slotMs: number,
  slotsOf: (slotIndex: number) => { baseline: SlotCounts | null; canary: SlotCounts | null },
): DetectorState {
  let next = state;
  const from = state.lastSlot === null ? firstSlot : Math.max(firstSlot, state.lastSlot + 1);
  for (let index = from; index <= lastSlot; index++) {
    const { baseline, canary } = slotsOf(index);
    next = observeSlot(plans, next, index, (index + 1) * slotMs, baseline, canary);
  }
  return next;
}

/**
 * The chart a check is read from, so that its outcome, held time and evidence come from one chart:
 * - among charts at or above their fail threshold, the one that reached it first (a `for` hold counts from the
 *   check's first breach, and does not restart when another chart later climbs further past its own threshold);
 * - else among charts at or above their warning threshold, the one nearest its fail threshold;
 * - else the one nearest its fail threshold (the largest statistic - fail). The first wins a tie.
 * @returns an index into `thresholds` (0 when there are none)
 */
export function reportedChart(thresholds: readonly ChartThresholds[], state: CheckStatistic): number {
  const charts = thresholds.map(({ fail, warn }, index) => {
    const s = state.charts[index] ?? ZERO_CHART;
    const level = s.statistic >= fail ? 2 : s.statistic >= warn ? 1 : 0;
    return { index, level, gap: s.statistic - fail, since: s.aboveSinceMs ?? Number.POSITIVE_INFINITY };
  });
  type Chart = (typeof charts)[number];
  const better = (a: Chart, b: Chart): boolean =>
    a.level !== b.level ? a.level > b.level : a.level === 2 && a.since !== b.since ? a.since < b.since : a.gap > b.gap;
  let best = charts[0];
  for (const c of charts) if (best !== undefined && better(c, best)) best = c;
  return best?.index ?? 0;
}

const ms = (v: number): string => `${v.toFixed(1)} ms`;
const pct = (ratio: number): string => `${(ratio * 100).toFixed(2)} %`;
const duration = (s: number): string =>
  s < 120 ? `${Math.round(s)} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
const figure = (unit: 'ms' | 'ratio', v: number): string => (unit === 'ms' ? ms(v) : pct(v));

/**
 * The result of every planned check at `atMs`.
 * @returns one CheckResult per plan, in table order, each with {@link SequentialEvidence}
 */
export function sequentialResults(
  policy: SequentialPolicy,
  plans: readonly CheckPlan[],
  state: DetectorState,
  atMs: number,
): CheckResult[] {
  return plans.map((plan) => {
    const { row } = plan;
    if (typeof plan.model === 'string') {
      return {
        check: row.name,
        outcome: 'inconclusive',
        observed: Number.NaN,
        threshold: Number.NaN,
        unit: row.unit,
        reason: `${row.name}: cannot run: ${plan.model}`,
      };
    }
    const model = plan.model;
    const checkState = state.checks[row.name] ?? ZERO;
    const lead = reportedChart(plan.charts, checkState);
    const s = checkState.charts[lead] ?? ZERO_CHART;
    const { fail, warn, rate } = plan.charts[lead]!;
    const chart = model.charts[lead]!;
    const forMs = policy.forMs[row.name] ?? 0;
    const drift = llrDrift(model.rates.observed, model.rates.p0, chart.p1) * model.rates.trialsPerS;
    const secondsToDecision = s.statistic >= fail ? 0 : secondsToClimb(fail - s.statistic, drift);
    let outcome: Outcome;
    let verdictWords: string;
    if (s.statistic >= fail) {
      const heldMs = s.aboveSinceMs === null ? 0 : atMs - s.aboveSinceMs;
      outcome = heldMs >= forMs ? 'fail' : 'warn';
      const rising = s.risingSinceMs === null ? '' : `, rising for ${duration((atMs - s.risingSinceMs) / 1000)}`;
      verdictWords =
        outcome === 'fail' ? `breach${rising}` : `breach held ${duration(heldMs / 1000)} of the ${duration(forMs / 1000)} required`;
    } else if (s.statistic >= warn) {
      outcome = 'warn';
      verdictWords = 'above the warning threshold';
    } else if (plan.underpowered) {
      outcome = 'inconclusive';
      verdictWords = `underpowered: at ${model.rates.trialsPerS.toFixed(2)} trials/s a regression of the configured size would take ${plan.secondsToDetect === null ? 'forever' : duration(plan.secondsToDetect)} to detect, longer than the ${duration(policy.horizonMs / 1000)} horizon`;
    } else if (checkState.canaryRequests < policy.minSamples) {
      outcome = 'inconclusive';
      verdictWords = `too few canary requests observed to pass (${checkState.canaryRequests} of minimum ${policy.minSamples})`;
    } else {
      outcome = 'pass';
      verdictWords = 'no evidence of a regression';
    }
    const toGo =
      outcome === 'fail'
        ? ''
        : secondsToDecision === null
          ? '; not accumulating at the current rates'
          : `; about ${duration(secondsToDecision)} more at the current rates would decide it`;
    const evidence: SequentialEvidence = {
      method: 'cusum',
      rule: model.charts.length > 1 ? `${model.rule}; leading chart: ${chart.tuning}` : model.rule,
      statistic: s.statistic,
      failThreshold: fail,
      falseAlarmRate: rate,
      warnThreshold: warn,
      p0: model.rates.p0,
      p1: chart.p1,
      observedRate: model.rates.observed,
      trialsPerS: model.rates.trialsPerS,
      latencyThresholdMs: model.latencyThresholdMs,
      secondsToDecision,
      secondsToDetect: plan.secondsToDetect,
      underpowered: plan.underpowered,
      risingSinceMs: s.risingSinceMs,
      aboveSinceMs: s.aboveSinceMs,
      canaryRequests: checkState.canaryRequests,
    };
    const reason = `${row.name}: canary ${figure(row.unit, model.observed)} vs ${figure(row.unit, model.threshold)}; statistic ${s.statistic.toFixed(2)} of ${fail.toFixed(2)} (warn ${warn.toFixed(2)}), observed rate ${pct(model.rates.observed)} (healthy ${pct(model.rates.p0)}, regressed ${pct(chart.p1)}${model.charts.length > 1 ? `, chart tuned for ${chart.tuning}` : ''}): ${verdictWords}${toGo}`;
    return { check: row.name, outcome, observed: model.observed, threshold: model.threshold, unit: row.unit, reason, evidence };
  });
}
