/**
 * The verdict transitions the evaluator announces, as a table: a sequence of outcomes (P pass, W warn, I
 * inconclusive, F fail) driven through the controller (K = 3) gives the kinds announced, in order. A rollback is not
 * among them: it is announced when written (test/app/evaluator-notify.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { initialState, latchedState, step, type ControllerState } from '../../src/core/controller.ts';
import { verdictTransitions, type GateEvent } from '../../src/core/transitions.ts';
import type { Outcome, Verdict, VersionFigures } from '../../src/core/verdict.ts';

const T0 = 1_700_000_000_000;

function figures(version: string): VersionFigures {
  return { version, requests: 1000, errors: 0, errorRatio: 0, p50Ms: 100, p95Ms: 200, p99Ms: 300, requestsPerSecond: 16.7, pods: 2 };
}

function verdictOf(outcome: Outcome, i: number): Verdict {
  return {
    outcome,
    atMs: T0 + (i + 1) * 5000,
    baseline: figures('v1'),
    canary: figures('v2'),
    reason: `verdict ${outcome} #${i}`,
    checks: [{ check: 'error_ratio_absolute', outcome, observed: 0, threshold: 0.05, unit: 'ratio', reason: `check ${outcome} #${i}` }],
  };
}

const OUTCOME: Record<string, Outcome> = { P: 'pass', W: 'warn', I: 'inconclusive', F: 'fail' };

/** Drives the outcomes through step() and verdictTransitions(); returns every event announced, in order. */
function announced(outcomes: string, start: ControllerState = initialState(T0)): GateEvent[] {
  let state = start;
  let warning = false;
  const events: GateEvent[] = [];
  outcomes
    .split(' ')
    .filter(Boolean)
    .forEach((letter, i) => {
      const verdict = verdictOf(OUTCOME[letter]!, i);
      const next = step({ consecutiveBreaches: 3 }, state, verdict, 'pod-a');
      const t = verdictTransitions(state, warning, verdict, next.state, false);
      events.push(...t.events);
      state = next.state;
      warning = t.warning;
    });
  return events;
}

describe('verdict transitions (K = 3)', () => {
  it.each([
    ['', []],
    ['P P P', []],
    ['W', ['warning_started']],
    ['W W W', ['warning_started']],
    ['W P', ['warning_started', 'warning_ended']],
    ['W I W', ['warning_started']],
    ['W I P', ['warning_started', 'warning_ended']],
    ['W P W P', ['warning_started', 'warning_ended', 'warning_started', 'warning_ended']],
    ['F', ['breaching']],
    ['F F', ['breaching']],
    ['F P', ['breaching', 'recovered']],
    ['F W', ['breaching', 'recovered', 'warning_started']],
    ['F I F P', ['breaching', 'recovered']],
    ['W F', ['warning_started', 'breaching']],
    ['W F P', ['warning_started', 'breaching', 'recovered']],
    ['F F F', ['breaching']],
    ['F F F W P', ['breaching']],
    ['I I I', []],
  ])('%j announces %j', (outcomes, kinds) => {
    expect(announced(outcomes).map((e) => e.kind)).toEqual(kinds);
  });

  it('announces nothing while latched', () => {
    expect(announced('W F P', latchedState(T0))).toEqual([]);
  });

  it('carries the verdict, its time, the streak and the advisory flag', () => {
    const before = initialState(T0);
    const verdict = verdictOf('fail', 0);
    const after = step({ consecutiveBreaches: 3 }, before, verdict, 'pod-a').state;
    const { events } = verdictTransitions(before, false, verdict, after, true);
    expect(events).toEqual([{ kind: 'breaching', atMs: verdict.atMs, advisory: true, verdict, consecutiveBreaches: 1 }]);
  });
});
