/**
 * The detector: one CUSUM statistic per check of {@link CHECK_TABLE}, advanced once per slot, and the check results
 * the judge reports from it. A pure state machine: the state goes in, the next state comes out; no clock, no I/O.
 *
 * Per evaluation: `checkModels` sets each check's hypotheses from the window (the baseline's quantiles, the traffic),
 * `observeSlot` adds each new slot's log-likelihood ratio, `sequentialResults` turns the statistics into outcomes:
 * fail at or above the fail threshold (held for the check's `for`), warn at or above the warning threshold,
 * inconclusive while the check cannot run, is underpowered or has seen fewer than minSamples canary requests, else
 * pass. Thresholds and their sources: src/core/sequential.ts.
 */
import { CHECK_TABLE, type CheckModel, type CheckRow, type CheckThresholds, type SequentialCheckName } from './checks.ts';
import { bernoulliKl, binomialLlr, cusumStep, failThreshold, llrDrift, secondsToClimb, warnThreshold } from './sequential.ts';
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

/** One check's statistic. */
export interface CheckStatistic {
  /** The CUSUM, nats (>= 0). */
  readonly statistic: number;
  /** End of the slot where the statistic last left 0: Page's estimate of when the change began, ms since the epoch. */
  readonly risingSinceMs: number | null;
  /** When the statistic last reached the fail threshold (null while below), ms since the epoch. */
  readonly aboveSinceMs: number | null;
  /** Canary requests in the slots this statistic has observed. */
  readonly canaryRequests: number;
}

export interface DetectorState {
  /** The last slot observed, or null before the first. */
  readonly lastSlot: number | null;
  readonly checks: Readonly<Partial<Record<SequentialCheckName, CheckStatistic>>>;
}

/** A detector that has seen nothing: where a rollout, a reset and a new lease holder start. */
export const EMPTY_DETECTOR: DetectorState = { lastSlot: null, checks: {} };

const ZERO: CheckStatistic = { statistic: 0, risingSinceMs: null, aboveSinceMs: null, canaryRequests: 0 };

/** A check's hypotheses and thresholds in the current window. */
export interface CheckPlan {
  readonly row: CheckRow;
  /** The model, or why the check cannot run now. */
  readonly model: CheckModel | string;
  /** Fail and warning thresholds, nats (NaN without a model). */
  readonly fail: number;
  readonly warn: number;
  /** Expected seconds to detect a regression of the configured size at this traffic (null: never). */
  readonly secondsToDetect: number | null;
  /** No regression of the configured size would be detected within the horizon at this traffic. */
  readonly underpowered: boolean;
}

/**
 * The plan of every enabled check for this window.
 * @param flagPercent the flag's canary percentage 0..100, or null when unknown
 */
export function checkPlans(
  policy: SequentialPolicy,
  baseline: WindowSnapshot,
  canary: WindowSnapshot,
  flagPercent: number | null,
): CheckPlan[] {
  const rows = CHECK_TABLE.filter((row) => row.threshold(policy.thresholds) > 0);
  const horizonS = policy.horizonMs / 1000;
  const warn = warnThreshold(policy.warnRate, rows.length);
  return rows.map((row) => {
    const model =
      row.needsBaseline && !(baseline.requests > 0)
        ? 'the baseline has no requests in the window'
        : row.model(policy.thresholds, baseline, canary, flagPercent);
    if (typeof model === 'string') return { row, model, fail: Number.NaN, warn: Number.NaN, secondsToDetect: null, underpowered: false };
    const { trialsPerS, p0, p1 } = model.rates;
    const fail = failThreshold(policy.falseRollbackRate, horizonS, bernoulliKl(p0, p1) * trialsPerS, rows.length);
    const secondsToDetect = secondsToClimb(fail, bernoulliKl(p1, p0) * trialsPerS);
    return {
      row,
      model,
      fail,
      warn: Math.min(warn, fail),
      secondsToDetect,
      underpowered: secondsToDetect === null || secondsToDetect > horizonS,
    };
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
    const statistic = cusumStep(before.statistic, binomialLlr(trial.events, trial.trials, trial.p0, trial.p1));
    const risingSinceMs = statistic === 0 ? null : before.statistic === 0 ? slotEndMs : before.risingSinceMs;
    const aboveSinceMs = statistic >= plan.fail ? (before.aboveSinceMs ?? slotEndMs) : null;
    checks[plan.row.name] = { statistic, risingSinceMs, aboveSinceMs, canaryRequests: before.canaryRequests + trial.canaryRequests };
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
    const s = state.checks[row.name] ?? ZERO;
    const forMs = policy.forMs[row.name] ?? 0;
    const drift = llrDrift(model.rates.observed, model.rates.p0, model.rates.p1) * model.rates.trialsPerS;
    const secondsToDecision = s.statistic >= plan.fail ? 0 : secondsToClimb(plan.fail - s.statistic, drift);
    let outcome: Outcome;
    let verdictWords: string;
    if (s.statistic >= plan.fail) {
      const heldMs = s.aboveSinceMs === null ? 0 : atMs - s.aboveSinceMs;
      outcome = heldMs >= forMs ? 'fail' : 'warn';
      const rising = s.risingSinceMs === null ? '' : `, rising for ${duration((atMs - s.risingSinceMs) / 1000)}`;
      verdictWords =
        outcome === 'fail' ? `breach${rising}` : `breach held ${duration(heldMs / 1000)} of the ${duration(forMs / 1000)} required`;
    } else if (s.statistic >= plan.warn) {
      outcome = 'warn';
      verdictWords = 'above the warning threshold';
    } else if (plan.underpowered) {
      outcome = 'inconclusive';
      verdictWords = `underpowered: at ${model.rates.trialsPerS.toFixed(2)} trials/s a regression of the configured size would take ${plan.secondsToDetect === null ? 'forever' : duration(plan.secondsToDetect)} to detect, longer than the ${duration(policy.horizonMs / 1000)} horizon`;
    } else if (s.canaryRequests < policy.minSamples) {
      outcome = 'inconclusive';
      verdictWords = `too few canary requests observed to pass (${s.canaryRequests} of minimum ${policy.minSamples})`;
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
      rule: model.rule,
      statistic: s.statistic,
      failThreshold: plan.fail,
      warnThreshold: plan.warn,
      p0: model.rates.p0,
      p1: model.rates.p1,
      observedRate: model.rates.observed,
      trialsPerS: model.rates.trialsPerS,
      latencyThresholdMs: model.latencyThresholdMs,
      secondsToDecision,
      secondsToDetect: plan.secondsToDetect,
      underpowered: plan.underpowered,
      risingSinceMs: s.risingSinceMs,
      aboveSinceMs: s.aboveSinceMs,
      canaryRequests: s.canaryRequests,
    };
    const reason = `${row.name}: canary ${figure(row.unit, model.observed)} vs ${figure(row.unit, model.threshold)}; statistic ${s.statistic.toFixed(2)} of ${plan.fail.toFixed(2)} (warn ${plan.warn.toFixed(2)}), observed rate ${pct(model.rates.observed)} (healthy ${pct(model.rates.p0)}, regressed ${pct(model.rates.p1)}): ${verdictWords}${toGo}`;
    return { check: row.name, outcome, observed: model.observed, threshold: model.threshold, unit: row.unit, reason, evidence };
  });
}
