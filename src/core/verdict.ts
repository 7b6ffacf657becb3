/**
 * Verdict vocabulary shared by the judge, the controller, `/status`, logs and decision records.
 * Outcomes have a declared best-to-worst order (as Argo Rollouts' phases do); the overall verdict is the worst check.
 */
import type { SequentialCheckName } from './checks.ts';
import type { WindowSnapshot } from './window.ts';

/** Best to worst. `inconclusive` outranks `warn` (no decision can rest on it) and `fail` outranks everything. */
export const OUTCOME_ORDER = ['pass', 'warn', 'inconclusive', 'fail'] as const;
export type Outcome = (typeof OUTCOME_ORDER)[number];

/** The worse of two outcomes by {@link OUTCOME_ORDER}. */
export function worst(a: Outcome, b: Outcome): Outcome {
  return OUTCOME_ORDER.indexOf(a) >= OUTCOME_ORDER.indexOf(b) ? a : b;
}

export type CheckName =
  /** The checks of the check table (src/core/checks.ts); the window and thresholds-only methods use four of them. */
  | SequentialCheckName
  /** A no-data cause (README, "No data"): its configured action decides the outcome. */
  | 'no_data'
  /** Sample-ratio mismatch: the observed canary share against the flag's. */
  | 'traffic_share';

/** Why a window cannot be judged as usual; each has its own configured action (policy.noData). */
export type NoDataCause = 'noTraffic' | 'canaryMissing' | 'baselineMissing' | 'redisUnreachable';
/** What a no-data cause does: `hold` (inconclusive), `rollback` (fail) or `pass`. */
export type NoDataAction = 'hold' | 'rollback' | 'pass';

/**
 * The statistical evidence behind a check (policy.statistics.enabled): a one-sided exact binomial test of "the canary's
 * rate exceeds the tolerated rate" (src/core/statistics.ts). For error checks the rate is the error ratio; for latency
 * checks it is the share of canary requests slower than the latency threshold, tolerated up to 5 % (what p95 means).
 */
export interface CheckEvidence {
  /** The rule in words, e.g. "share of canary requests slower than 1.5 x baseline p95 (upper bound) above 5 %". */
  readonly rule: string;
  /** Canary events counted: errors, or requests slower than `latencyThresholdMs`. */
  readonly count: number;
  /** Canary requests in the window. */
  readonly requests: number;
  /** The latency the slow requests were counted against, ms (latency checks only, else null). */
  readonly latencyThresholdMs: number | null;
  /** Rate tolerated under the null hypothesis, 0..1. */
  readonly tolerated: number;
  /** Clopper–Pearson lower confidence bound of the canary's rate at 1 - alpha, 0..1. */
  readonly lowerBound: number;
  /** Significance level of this check in this evaluation. */
  readonly alpha: number;
  /** Further canary requests the test needs at the observed rate; 0 when decided; null when not on course to a breach. */
  readonly neededRequests: number | null;
}

/**
 * The evidence of a sequential check (the default method): its CUSUM statistic against its thresholds
 * (src/core/detector.ts). Statistics and thresholds are in nats; rates 0..1; times in s or ms since the epoch.
 */
export interface SequentialEvidence {
  readonly method: 'cusum';
  /** The statistic's counts and hypotheses in words. */
  readonly rule: string;
  /** The CUSUM now, nats. */
  readonly statistic: number;
  /** The statistic fails at or above this, nats (from policy.statistics.falseRollbackRate and horizon). */
  readonly failThreshold: number;
  /**
   * The probability of a false alarm within the horizon the fail threshold holds, 0..1: this chart's share of
   * policy.statistics.falseRollbackRate (README, "How the gate decides").
   */
  readonly falseAlarmRate: number;
  /** The statistic warns at or above this, nats (from policy.statistics.warnRate). */
  readonly warnThreshold: number;
  /** The counted rate if the canary is healthy (p0) and if it regressed by the configured size (p1), 0..1. */
  readonly p0: number;
  readonly p1: number;
  /** The rate in the current window, 0..1 (NaN when unknown). */
  readonly observedRate: number;
  /** Trials (requests, or errors for the relative error check) per second in the window. */
  readonly trialsPerS: number;
  /** The latency slow requests are counted against, ms (latency checks), else null. */
  readonly latencyThresholdMs: number | null;
  /** Seconds the statistic needs to reach the fail threshold at the window's rates: 0 when there, null when it falls. */
  readonly secondsToDecision: number | null;
  /** Expected seconds to detect a regression of the configured size at this traffic (null: never). */
  readonly secondsToDetect: number | null;
  /** True when that exceeds the horizon: the gate is blind to such a regression at this traffic. */
  readonly underpowered: boolean;
  /** When the statistic last left zero (the change's estimated start), ms since the epoch; null at zero. */
  readonly risingSinceMs: number | null;
  /** When it reached the fail threshold, ms since the epoch; null below it. */
  readonly aboveSinceMs: number | null;
  /** Canary requests the statistic has observed. */
  readonly canaryRequests: number;
}

/** Whether evidence comes from the sequential method. */
export function isSequential(e: CheckEvidence | SequentialEvidence | undefined): e is SequentialEvidence {
  return e !== undefined && (e as SequentialEvidence).method === 'cusum';
}

/** One check's result with its evidence. `observed` and `threshold` share `unit`; NaN when not computable. */
export interface CheckResult {
  readonly check: CheckName;
  readonly outcome: Outcome;
  /** The canary's figure the rule looked at. */
  readonly observed: number;
  /** The failing threshold the figure was compared with (the warning threshold is in `reason` when it applied). */
  readonly threshold: number;
  readonly unit: 'ms' | 'ratio';
  /** One line with both numbers, e.g. "canary p95 812.0 ms > 1.5 x baseline p95 402.0 ms = 603.0 ms". */
  readonly reason: string;
  /** The test behind the outcome; absent when policy.statistics is off or there was nothing to test. */
  readonly evidence?: CheckEvidence | SequentialEvidence;
}

/** Requests, errors and latency quantiles as people read them: latencies in ms (NaN without samples), ratio 0..1. */
export interface LatencyFigures {
  readonly requests: number;
  readonly errors: number;
  /** errors / requests, 0..1; NaN when requests is 0. */
  readonly errorRatio: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
}

/** Figures of one version in the window: the latency figures plus its rate (requests/s) and reporting pods. */
export interface VersionFigures extends LatencyFigures {
  readonly version: string;
  readonly requestsPerSecond: number;
  readonly pods: number;
}

/** The figures of a version nothing was read of: no requests, no pods, every ratio and quantile NaN. */
export function noFigures(version: string): VersionFigures {
  return {
    version,
    requests: 0,
    errors: 0,
    errorRatio: Number.NaN,
    p50Ms: Number.NaN,
    p95Ms: Number.NaN,
    p99Ms: Number.NaN,
    requestsPerSecond: 0,
    pods: 0,
  };
}

export interface Verdict {
  readonly outcome: Outcome;
  /** When the judged window ended, ms since the epoch. */
  readonly atMs: number;
  readonly checks: readonly CheckResult[];
  readonly baseline: VersionFigures;
  readonly canary: VersionFigures;
  /** The reasons of the checks that set the outcome, joined with "; ". */
  readonly reason: string;
  /** Sequential checks that could not detect a regression of their configured size within the horizon at this traffic. */
  readonly underpowered?: readonly CheckName[];
}

/** Converts a window snapshot (µs) into figures for people (ms). */
export function toFigures(s: WindowSnapshot): VersionFigures {
  return {
    version: s.version,
    requests: s.requests,
    errors: s.errors,
    errorRatio: s.errorRatio,
    p50Ms: s.p50Us / 1000,
    p95Ms: s.p95Us / 1000,
    p99Ms: s.p99Us / 1000,
    requestsPerSecond: s.requestsPerSecond,
    pods: s.pods,
  };
}
