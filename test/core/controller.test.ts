/**
 * The rollback controller, from the specification: healthy -> breaching -> rolled_back after K consecutive failing
 * evaluations (default 3); inconclusive neither counts nor resets the streak; pass and warn reset it; rolled_back is
 * latched; the decision carries the failing checks, the reason, the figures, the time and the pod.
 */
import { describe, expect, it } from 'vitest';
import {
  initialState,
  latchedState,
  manualDecision,
  step,
  type ControllerPolicy,
  type ControllerState,
  type Phase,
  type RollbackDecision,
} from '../../src/core/controller.ts';
import { judge } from '../../src/core/judge.ts';
import type { Outcome, Verdict, VersionFigures } from '../../src/core/verdict.ts';
import type { WindowSnapshot } from '../../src/core/window.ts';
import { piecewiseQuantile, THRESHOLDS_ONLY } from '../helpers/snapshots.ts';

const T0 = 1_700_000_000_000;
const EVERY_MS = 5_000;
const POD = 'api-7d9f-x2';
const K3: ControllerPolicy = { consecutiveBreaches: 3 };

function figures(version: string): VersionFigures {
  return { version, requests: 1000, errors: 0, errorRatio: 0, p50Ms: 100, p95Ms: 200, p99Ms: 300, requestsPerSecond: 16.7, pods: 2 };
}

/** A verdict that only sets the outcome; evaluation i happens at T0 + (i + 1) x EVERY_MS. */
function verdictOf(outcome: Outcome, i: number): Verdict {
  return {
    outcome,
    atMs: T0 + (i + 1) * EVERY_MS,
    checks: [{ check: 'latency_p95_absolute', outcome, observed: 1, threshold: 1, unit: 'ms', reason: `check ${outcome} #${i}` }],
    baseline: figures('v1'),
    canary: figures('v2'),
    reason: `verdict ${outcome} #${i}`,
  };
}

interface Run {
  state: ControllerState;
  /** Index of every step that returned a decision, with the decision. */
  decisions: Array<{ at: number; decision: RollbackDecision }>;
}

function drive(outcomes: readonly Outcome[], policy: ControllerPolicy = K3, start: ControllerState = initialState(T0)): Run {
  let state = start;
  const decisions: Run['decisions'] = [];
  outcomes.forEach((o, i) => {
    const next = step(policy, state, verdictOf(o, i), POD);
    state = next.state;
    if (next.decision !== null) decisions.push({ at: i, decision: next.decision });
  });
  return { state, decisions };
}

const seq = (text: string): Outcome[] =>
  text
    .split(' ')
    .filter((t) => t !== '')
    .map((t) => ({ P: 'pass', W: 'warn', I: 'inconclusive', F: 'fail' })[t] as Outcome);

describe('controller: sequences of outcomes (P pass, W warn, I inconclusive, F fail), K = 3', () => {
  const cases: Array<{ outcomes: string; phase: Phase; streak: number; decidedAt: number | null }> = [
    { outcomes: '', phase: 'healthy', streak: 0, decidedAt: null },
    { outcomes: 'P W P', phase: 'healthy', streak: 0, decidedAt: null },
    { outcomes: 'F', phase: 'breaching', streak: 1, decidedAt: null },
    { outcomes: 'F F', phase: 'breaching', streak: 2, decidedAt: null },
    { outcomes: 'F F F', phase: 'rolled_back', streak: 3, decidedAt: 2 },
    { outcomes: 'P P F F F', phase: 'rolled_back', streak: 3, decidedAt: 4 },
    // pass and warn reset the streak
    { outcomes: 'F F P', phase: 'healthy', streak: 0, decidedAt: null },
    { outcomes: 'F F W', phase: 'healthy', streak: 0, decidedAt: null },
    { outcomes: 'F F P F F', phase: 'breaching', streak: 2, decidedAt: null },
    { outcomes: 'F F W F F', phase: 'breaching', streak: 2, decidedAt: null },
    { outcomes: 'F F W F F F', phase: 'rolled_back', streak: 3, decidedAt: 5 },
    // inconclusive neither counts nor resets
    { outcomes: 'I I I I I', phase: 'healthy', streak: 0, decidedAt: null },
    { outcomes: 'F I', phase: 'breaching', streak: 1, decidedAt: null },
    { outcomes: 'F I I I F', phase: 'breaching', streak: 2, decidedAt: null },
    { outcomes: 'F I F I F', phase: 'rolled_back', streak: 3, decidedAt: 4 },
    { outcomes: 'F F I I I F', phase: 'rolled_back', streak: 3, decidedAt: 5 },
    { outcomes: 'F I P F F', phase: 'breaching', streak: 2, decidedAt: null },
    // latched: nothing after the rollback changes the state or decides again
    { outcomes: 'F F F P P W', phase: 'rolled_back', streak: 3, decidedAt: 2 },
    { outcomes: 'F F F F F F', phase: 'rolled_back', streak: 3, decidedAt: 2 },
    { outcomes: 'F F F I P F F F', phase: 'rolled_back', streak: 3, decidedAt: 2 },
  ];
  it.each(cases)('[$outcomes] -> $phase, streak $streak, decision at $decidedAt', ({ outcomes, phase, streak, decidedAt }) => {
    const { state, decisions } = drive(seq(outcomes));
    expect(state.phase).toBe(phase);
    expect(state.consecutiveBreaches).toBe(streak);
    expect(decisions.map((d) => d.at)).toEqual(decidedAt === null ? [] : [decidedAt]);
  });
});

describe('controller: K from the policy', () => {
  const cases: Array<{ k: number; outcomes: string; phase: Phase; decisions: number }> = [
    { k: 1, outcomes: 'F', phase: 'rolled_back', decisions: 1 },
    { k: 1, outcomes: 'I W P', phase: 'healthy', decisions: 0 },
    { k: 2, outcomes: 'F', phase: 'breaching', decisions: 0 },
    { k: 2, outcomes: 'F I F', phase: 'rolled_back', decisions: 1 },
    { k: 5, outcomes: 'F F F F', phase: 'breaching', decisions: 0 },
    { k: 5, outcomes: 'F F F F F', phase: 'rolled_back', decisions: 1 },
    { k: 5, outcomes: 'F F F F W F F F F', phase: 'breaching', decisions: 0 },
  ];
  it.each(cases)('K = $k, [$outcomes] -> $phase', ({ k, outcomes, phase, decisions }) => {
    const run = drive(seq(outcomes), { consecutiveBreaches: k });
    expect(run.state.phase).toBe(phase);
    expect(run.decisions).toHaveLength(decisions);
    if (decisions === 1) expect(run.decisions[0]!.decision.consecutiveBreaches).toBe(k);
  });
});

describe('controller: phase times', () => {
  it('marks when the phase changed, not when the last verdict came', () => {
    const o = seq('P F F');
    let state = initialState(T0);
    const states: ControllerState[] = [];
    o.forEach((x, i) => {
      state = step(K3, state, verdictOf(x, i), POD).state;
      states.push(state);
    });
    expect(states[0]!.sinceMs).toBe(T0);
    expect(states[1]!.sinceMs).toBe(verdictOf('fail', 1).atMs);
    expect(states[2]!.sinceMs).toBe(verdictOf('fail', 1).atMs);
    const rolled = drive(seq('F F F')).state;
    expect(rolled.sinceMs).toBe(verdictOf('fail', 2).atMs);
    const recovered = drive(seq('F F P')).state;
    expect(recovered.sinceMs).toBe(verdictOf('pass', 2).atMs);
  });
});

describe('controller: latch', () => {
  const latched = latchedState(T0 - 60_000);
  it.each(['pass', 'warn', 'inconclusive', 'fail'] as const)('a latched state ignores %s', (outcome) => {
    const next = step(K3, latched, verdictOf(outcome, 0), POD);
    expect(next.decision).toBeNull();
    expect(next.state).toEqual(latched);
  });
  it('ignores a long run of failures after a latch found in Redis (no second decision)', () => {
    const run = drive(seq('F F F F F F F'), K3, latched);
    expect(run.decisions).toEqual([]);
    expect(run.state).toEqual(latched);
  });
});

describe('controller: the decision', () => {
  const snap = (version: string, p95Us: number, requests: number, errors: number): WindowSnapshot => ({
    version,
    requests,
    errors,
    errorRatio: errors / requests,
    p50Us: p95Us / 3,
    p95Us,
    p99Us: p95Us * 2,
    requestsPerSecond: requests / 60,
    windowMs: 60_000,
    pods: 4,
    slotsReported: 12,
    quantileUs: piecewiseQuantile(p95Us / 3, p95Us, p95Us * 2),
  });
  // canary p95 812 ms vs 402 ms: both latency checks fail; canary 2 % errors vs 2 %: relative pass, absolute warn
  const verdicts = [0, 1, 2].map((i) =>
    judge(THRESHOLDS_ONLY, snap('v1', 402_000, 1000, 20), snap('v2', 812_000, 500, 10), T0 + i * EVERY_MS),
  );
  let state = initialState(T0);
  const steps = verdicts.map((v) => {
    const s = step(K3, state, v, POD);
    state = s.state;
    return s;
  });
  const decision = steps[2]!.decision!;
  const last = verdicts[2]!;

  it('is made on the third failing evaluation only', () => {
    expect(steps.map((s) => s.decision === null)).toEqual([true, true, false]);
    expect(verdicts.every((v) => v.outcome === 'fail')).toBe(true);
  });
  it('is an automatic rollback by this pod at the verdict time', () => {
    expect(decision.state).toBe('rolled_back');
    expect(decision.trigger).toBe('automatic');
    expect(decision.by).toBe(POD);
    expect(decision.atMs).toBe(last.atMs);
    expect(decision.at).toBe(new Date(last.atMs).toISOString());
    expect(decision.consecutiveBreaches).toBe(3);
  });
  it('carries every check of the last verdict, the failing ones marked', () => {
    expect(decision.checks).toEqual(last.checks);
    expect(
      decision.checks
        .filter((c) => c.outcome === 'fail')
        .map((c) => c.check)
        .sort(),
    ).toEqual(['latency_p95_absolute', 'latency_p95_relative']);
    expect(last.checks.some((c) => c.outcome === 'warn')).toBe(true);
  });
  it('carries the reason with both numbers and the figures of both versions', () => {
    expect(decision.reason).toContain(last.reason);
    expect(decision.reason).toMatch(/812(\.0+)? ms/);
    expect(decision.reason).toMatch(/402(\.0+)? ms/);
    expect(decision.reason).toMatch(/\b3\b/);
    expect(decision.baseline).toEqual(last.baseline);
    expect(decision.canary).toEqual(last.canary);
    expect(decision.canary?.p95Ms).toBe(812);
    expect(decision.baseline?.p95Ms).toBe(402);
  });
});

describe('controller: no-data failures need their own streak (consecutiveNoData, default 3)', () => {
  /** A failing verdict whose failing check is `check`. */
  const failingOn = (check: 'no_data' | 'error_ratio_relative', i: number): Verdict => ({
    ...verdictOf('fail', i),
    checks: [{ check, outcome: 'fail', observed: Number.NaN, threshold: Number.NaN, unit: 'ratio', reason: `${check} #${i}` }],
  });
  const run = (checks: Array<'no_data' | 'error_ratio_relative'>, policy: ControllerPolicy): number | null => {
    let state = initialState(T0);
    for (const [i, check] of checks.entries()) {
      const next = step(policy, state, failingOn(check, i), POD);
      state = next.state;
      if (next.decision !== null) return i;
    }
    return null;
  };

  it.each([
    [['error_ratio_relative'], { consecutiveBreaches: 1 }, 0],
    [['no_data'], { consecutiveBreaches: 1 }, null],
    [['no_data', 'no_data', 'no_data'], { consecutiveBreaches: 1 }, 2],
    [['no_data', 'no_data', 'error_ratio_relative'], { consecutiveBreaches: 1 }, 2],
    [['no_data', 'error_ratio_relative'], { consecutiveBreaches: 1 }, 1],
    [['no_data', 'no_data'], { consecutiveBreaches: 1, consecutiveNoData: 2 }, 1],
    [['no_data', 'no_data', 'no_data', 'no_data'], { consecutiveBreaches: 4 }, 3],
  ] as const)('%j with %j rolls back at evaluation %s', (checks, policy, at) => {
    expect(run([...checks], policy)).toBe(at);
  });
});

describe('manualDecision: a rollback asked for by a person', () => {
  it('is latched like an automatic one, with no checks, the last figures when there are some, and the config hash', () => {
    const latest = verdictOf('warn', 4);
    const d = manualDecision({ reason: 'customers complain', by: 'oncall', atMs: T0, latest, configHash: '0123456789abcdef' });
    expect(d).toEqual({
      state: 'rolled_back',
      trigger: 'manual',
      reason: 'manual rollback: customers complain',
      checks: [],
      baseline: latest.baseline,
      canary: latest.canary,
      consecutiveBreaches: 0,
      atMs: T0,
      at: new Date(T0).toISOString(),
      by: 'oncall',
      configHash: '0123456789abcdef',
    });
  });
  it('records no figures without a verdict, and no config hash when none is given', () => {
    const d = manualDecision({ reason: 'r', by: 'me@cli', atMs: T0 });
    expect(d).toMatchObject({ baseline: null, canary: null, by: 'me@cli' });
    expect('configHash' in d).toBe(false);
  });
});
