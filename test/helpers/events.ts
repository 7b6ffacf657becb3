/** One gate event of every kind, with a hand-made verdict and the decision the controller makes of it. */
import { initialState, manualDecision, step, type RollbackDecision } from '../../src/core/controller.ts';
import type { RolloutStatus, RolloutTransitionKind } from '../../src/core/rollout.ts';
import type { GateEvent } from '../../src/core/transitions.ts';
import type { Outcome, Verdict, VersionFigures } from '../../src/core/verdict.ts';

export const T0 = 1_795_391_800_000;

function figures(version: string, errors: number): VersionFigures {
  return {
    version,
    requests: 1000,
    errors,
    errorRatio: errors / 1000,
    p50Ms: 20.4,
    p95Ms: 48,
    p99Ms: 66.5,
    requestsPerSecond: 100,
    pods: 2,
  };
}

/** A verdict whose error check has the given outcome (the latency check passes). */
export function verdictOf(outcome: Outcome, atMs: number): Verdict {
  const reason = outcome === 'pass' ? '' : `canary error ratio 12.00 % > 5.00 % (${outcome})`;
  return {
    outcome,
    atMs,
    baseline: figures('v1', 2),
    canary: figures('v2', outcome === 'pass' ? 2 : 120),
    reason,
    checks: [
      {
        check: 'error_ratio_absolute',
        outcome,
        observed: 0.12,
        threshold: 0.05,
        unit: 'ratio',
        reason: reason || 'canary error ratio 0.20 % <= 5.00 %',
      },
      {
        check: 'latency_p95_relative',
        outcome: 'pass',
        observed: 48,
        threshold: 72,
        unit: 'ms',
        reason: 'canary p95 48.0 ms <= 1.5 x baseline p95 48.0 ms = 72.0 ms',
      },
    ],
  };
}

/** The automatic decision of a failing verdict at `atMs`, decided by pod-a. */
export function automaticDecision(atMs: number): RollbackDecision {
  return {
    ...step({ consecutiveBreaches: 1 }, initialState(0), verdictOf('fail', atMs), 'pod-a').decision!,
    configHash: '0123456789abcdef',
  };
}

/** Every kind of event, in the order a rollout could see them. */
export function everyKind(): GateEvent[] {
  const decision = automaticDecision(T0 + 20_000);
  const manual = manualDecision({ reason: 'pager says so', by: 'alice', atMs: T0 + 60_000 });
  return [
    { kind: 'warning_started', atMs: T0 + 5000, advisory: false, verdict: verdictOf('warn', T0 + 5000) },
    { kind: 'warning_ended', atMs: T0 + 10_000, advisory: false, verdict: verdictOf('pass', T0 + 10_000) },
    { kind: 'breaching', atMs: T0 + 15_000, advisory: false, verdict: verdictOf('fail', T0 + 15_000), consecutiveBreaches: 1 },
    { kind: 'recovered', atMs: T0 + 17_000, advisory: false, verdict: verdictOf('pass', T0 + 17_000) },
    { kind: 'rolled_back', atMs: decision.atMs, advisory: false, decision },
    { kind: 'reset', atMs: T0 + 40_000, advisory: false, actor: 'bob', reason: 'v2.0.1 fixes it', decision },
    { kind: 'rolled_back', atMs: manual.atMs, advisory: false, decision: manual },
    ...rolloutEvents(T0 + 100_000),
  ];
}

/** One rollout event of each kind, a second apart from `atMs`. */
export function rolloutEvents(atMs: number): GateEvent[] {
  const steps: Array<[RolloutTransitionKind, RolloutStatus, number | null, number]> = [
    ['started', 'progressing', null, 5],
    ['promoted', 'progressing', 5, 25],
    ['paused', 'paused', 25, 25],
    ['resumed', 'progressing', 25, 25],
    ['completed', 'completed', 25, 100],
    ['aborted', 'aborted', 25, 0],
    ['rolled_back', 'rolled_back', 25, 25],
  ];
  return steps.map(([kind, status, fromWeight, toWeight], i) => ({
    kind: `rollout_${kind}` as const,
    atMs: atMs + i * 1000,
    advisory: false,
    rollout: { id: String(atMs), status, stage: 1, weight: toWeight, revision: i + 1 },
    record: { kind, atMs: atMs + i * 1000, actor: 'alice@cli', reason: `ticket ${i}`, fromWeight, toWeight, evidence: null },
  }));
}
