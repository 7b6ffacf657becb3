/**
 * The evidence a rollout needs before it leaves a weight, as data. Pure: the verdict, the time at the weight and the
 * canary requests gathered there go in; what is still missing comes out, in words, so that `status`, the admin API,
 * the audit stream and the notifications all say the same thing.
 *
 * A promotion needs all of:
 * - the verdict is `pass`: not `warn`, not `inconclusive`, not `fail`; no verdict at all (no evaluation, Redis
 *   unreachable) never promotes, nor does a `no_data` check (even one whose configured action is `pass`) or a
 *   `traffic_share` check (the router does not split as the flag says);
 * - the weight has been held for the stage's least time (rollout.minStepTime, or a longer pause);
 * - the canary has served enough requests at this weight that each sequential check would have detected a
 *   regression of its configured size by now: for each check, its expected time to detect at this traffic
 *   (SequentialEvidence.secondsToDetect, the judge's own CUSUM threshold and drift, src/core/detector.ts) times the
 *   canary's request rate, and at least policy.minSamples. An underpowered check (blind within the horizon at this
 *   traffic) means the evidence cannot be gathered at this weight: the rollout waits for a person.
 */
import type { RolloutStage } from './rollout-plan.ts';
import { formatDuration } from './rollout-plan.ts';
import { isSequential, type Outcome, type Verdict } from './verdict.ts';

/** What a rollout knows about its current weight at one evaluation. */
export interface PromotionEvidence {
  /** The latest verdict's outcome, or null when there was none. */
  readonly verdict: Outcome | null;
  /** Time at this weight, ms, and the least time the stage needs, ms. */
  readonly atWeightMs: number;
  readonly minMs: number;
  /** Canary requests served at this weight (whole slots since the promotion). */
  readonly canaryRequests: number;
  /** Canary requests the checks need at this traffic; null when they cannot be gathered (an underpowered check, no canary traffic). */
  readonly requiredRequests: number | null;
  /** "Requests still needed to promote": required - served (>= 0), null when they cannot be gathered. */
  readonly stillNeeded: number | null;
  /** What the promotion still waits for, one line each; empty: the evidence holds. */
  readonly missing: readonly string[];
}

/** Canary requests the checks need, or why they cannot be gathered. */
export interface RequiredRequests {
  readonly required: number | null;
  /** The check that sets the requirement (or blocks it), for people. */
  readonly reason: string;
}

/**
 * The canary requests a weight must gather before it may be left (module doc).
 * @param verdict the latest verdict: its sequential evidence and the canary's request rate (requests/s)
 * @param minSamples policy.minSamples, the floor (and the whole requirement without sequential evidence)
 * @returns `required` >= minSamples, or null with the reason when no number of requests would do at this traffic
 */
export function requiredCanaryRequests(verdict: Verdict, minSamples: number): RequiredRequests {
  const rate = verdict.canary.requestsPerSecond;
  let required = minSamples;
  let reason = `policy.minSamples ${minSamples}`;
  for (const check of verdict.checks) {
    const e = check.evidence;
    if (!isSequential(e)) continue;
    if (e.underpowered || e.secondsToDetect === null)
      return { required: null, reason: `${check.check} is underpowered at this traffic (cannot detect its regression within the horizon)` };
    if (!(rate > 0)) return { required: null, reason: 'the canary has no traffic in the window' };
    const need = Math.ceil(e.secondsToDetect * rate);
    if (need > required) {
      required = need;
      reason = `${check.check} detects its regression in about ${formatDuration(e.secondsToDetect)} at ${rate.toFixed(1)} canary requests/s`;
    }
  }
  return { required, reason };
}

/**
 * What leaving `stage` still waits for.
 * @param verdict the latest verdict, or null when the evaluation had none (Redis unreachable)
 * @param atWeightMs time since the promotion to this weight, ms
 * @param canaryRequests canary requests served at this weight
 */
export function promotionEvidence(
  stage: RolloutStage,
  verdict: Verdict | null,
  atWeightMs: number,
  canaryRequests: number,
  minSamples: number,
): PromotionEvidence {
  const missing: string[] = [];
  let required: RequiredRequests = { required: null, reason: 'no verdict' };
  if (verdict === null) missing.push('a verdict: none yet (no evaluation, or Redis unreachable)');
  else {
    if (verdict.outcome !== 'pass') missing.push(`a pass verdict: the verdict is ${verdict.outcome} (${verdict.reason})`);
    for (const check of verdict.checks) {
      if (check.check === 'no_data') missing.push(`data: ${check.reason}`);
      if (check.check === 'traffic_share') missing.push(`a traffic split that matches the flag: ${check.reason}`);
    }
    required = requiredCanaryRequests(verdict, minSamples);
  }
  if (atWeightMs < stage.minMs)
    missing.push(`time: ${formatDuration(atWeightMs / 1000)} of ${formatDuration(stage.minMs / 1000)} at ${stage.weight} %`);
  const stillNeeded = required.required === null ? null : Math.max(0, required.required - canaryRequests);
  if (verdict !== null && required.required === null) missing.push(`evidence that can be gathered: ${required.reason}`);
  else if (stillNeeded !== null && stillNeeded > 0)
    missing.push(`canary requests: ${canaryRequests} of ${required.required} (${required.reason})`);
  return {
    verdict: verdict?.outcome ?? null,
    atWeightMs,
    minMs: stage.minMs,
    canaryRequests,
    requiredRequests: required.required,
    stillNeeded,
    missing,
  };
}
