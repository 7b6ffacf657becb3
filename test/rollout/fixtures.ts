/** Shared fixtures of the rollout tests: a passing verdict whose one sequential check needs 300 canary requests. */
import type { SequentialEvidence, Verdict, VersionFigures } from '../../src/core/verdict.ts';

export const SLOT_MS = 5_000;

/** One version's figures in the fixtures' verdicts: 600 requests, no errors, p95 40 ms. */
export const figures = (version: string): VersionFigures => ({
  version,
  requests: 600,
  errors: 0,
  errorRatio: 0,
  p50Ms: 20,
  p95Ms: 40,
  p99Ms: 60,
  requestsPerSecond: 10,
  pods: 1,
});

/**
 * A sequential check's evidence at 10 canary requests/s with nothing accumulated: what a rollout step reads.
 * @param o.secondsToDetect seconds the check needs to detect a regression of its size (null: never)
 */
export function sequentialEvidence(o: {
  readonly secondsToDetect: number | null;
  readonly underpowered?: boolean;
  readonly latencyThresholdMs: number;
  readonly canaryRequests: number;
}): SequentialEvidence {
  return {
    method: 'cusum',
    rule: 'r',
    statistic: 0,
    failThreshold: 10,
    falseAlarmRate: 0.002,
    warnThreshold: 5,
    p0: 0.05,
    p1: 0.1,
    observedRate: 0.05,
    trialsPerS: 10,
    latencyThresholdMs: o.latencyThresholdMs,
    secondsToDecision: null,
    secondsToDetect: o.secondsToDetect,
    underpowered: o.underpowered ?? false,
    risingSinceMs: null,
    aboveSinceMs: null,
    canaryRequests: o.canaryRequests,
  };
}

/** A pass verdict at `atMs`: latency_p95_relative detects its regression in 30 s at 10 canary requests/s, so 300 requests. */
export function passingVerdict(atMs: number): Verdict {
  return {
    outcome: 'pass',
    atMs,
    checks: [
      {
        check: 'latency_p95_relative',
        outcome: 'pass',
        observed: 40,
        threshold: 60,
        unit: 'ms',
        reason: 'no evidence of a regression',
        evidence: sequentialEvidence({ secondsToDetect: 30, latencyThresholdMs: 40, canaryRequests: 600 }),
      },
    ],
    baseline: figures('v1'),
    canary: figures('v2'),
    reason: '',
  };
}
