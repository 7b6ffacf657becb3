/**
 * The rollout state machine and its evidence, pure and table-driven: every transition of src/core/rollout.ts, each
 * refusal, and promotion refused for each missing piece of evidence (one field changed per case).
 */
import { describe, expect, it } from 'vitest';
import { rolloutStages, type RolloutStage } from '../../src/core/rollout-plan.ts';
import { promotionEvidence, requiredCanaryRequests } from '../../src/core/rollout-evidence.ts';
import { rolloutStep, type RolloutInput, type RolloutResult, type RolloutState, type RolloutStatus } from '../../src/core/rollout.ts';
import type { CheckResult, Outcome, Verdict } from '../../src/core/verdict.ts';
import { figures, sequentialEvidence } from './fixtures.ts';

const T0 = 1_700_000_000_000;
const MIN_MS = 60_000;
const SLOT_MS = 5_000;
const STAGES = rolloutStages([{ setWeight: 5 }, { setWeight: 25 }, { pause: { durationMs: null } }, { setWeight: 50 }], MIN_MS);
const MIN_SAMPLES = 100;

/** A verdict whose one sequential check needs `secondsToDetect` at 10 canary requests/s (so 10 x that many requests). */
function verdict(
  outcome: Outcome = 'pass',
  options: { extra?: CheckResult[]; secondsToDetect?: number | null; underpowered?: boolean } = {},
): Verdict {
  const check: CheckResult = {
    check: 'latency_p95_relative',
    outcome,
    observed: 40,
    threshold: 60,
    unit: 'ms',
    reason: `p95 ${outcome}`,
    evidence: sequentialEvidence({
      secondsToDetect: options.secondsToDetect === undefined ? 30 : options.secondsToDetect,
      underpowered: options.underpowered,
      latencyThresholdMs: 100,
      canaryRequests: 1000,
    }),
  };
  return {
    outcome,
    atMs: T0,
    checks: [check, ...(options.extra ?? [])],
    baseline: figures('v1'),
    canary: figures('v2'),
    reason: `verdict ${outcome}`,
  };
}

const who = (atMs: number, latched = false) => ({ atMs, actor: 'alice@cli', reason: 'ticket 42', latched });

function started(stage = 0, over: Partial<RolloutState> = {}): RolloutState {
  const r = rolloutStep(STAGES, null, { kind: 'start', ...who(T0) });
  if (r.kind !== 'transition') throw new Error('start refused');
  const weight = STAGES[stage]!.weight;
  return { ...r.state, stage, weight, ...over };
}

/** An evaluation at `atMs` with `requests` canary requests in the slot that ended there. */
function evaluation(atMs: number, requests: number, over: Partial<Extract<RolloutInput, { kind: 'evaluation' }>> = {}): RolloutInput {
  const slot = Math.floor(atMs / SLOT_MS) - 1;
  return {
    kind: 'evaluation',
    ...who(atMs),
    actor: 'pod-a',
    reason: '',
    verdict: verdict(),
    flagWeight: 5,
    slots: [{ slot, startMs: slot * SLOT_MS, canaryRequests: requests }],
    minSamples: MIN_SAMPLES,
    ...over,
  };
}

const statusOf = (r: RolloutResult, before: RolloutState | null): RolloutStatus | 'none' =>
  r.kind === 'transition' || r.kind === 'progress' ? r.state.status : (before?.status ?? 'none');

describe('the plan', () => {
  it('turns steps into one stage per weight with least times and person pauses, ending at 100 %', () => {
    expect(
      rolloutStages([{ setWeight: 5 }, { pause: { durationMs: 600_000 } }, { setWeight: 25 }, { pause: { durationMs: null } }], 60_000),
    ).toEqual([
      { weight: 5, minMs: 600_000, waitForPerson: false },
      { weight: 25, minMs: 60_000, waitForPerson: true },
      { weight: 100, minMs: 0, waitForPerson: false },
    ] satisfies RolloutStage[]);
    expect(rolloutStages([{ setWeight: 50 }, { setWeight: 100 }], 1000).map((s) => s.weight)).toEqual([50, 100]);
  });
});

describe('operator transitions', () => {
  const progressing = started();
  const paused: RolloutState = { ...progressing, status: 'paused', pauseCause: 'person' };
  const rolledBack: RolloutState = { ...progressing, status: 'rolled_back' };
  const completed: RolloutState = { ...progressing, status: 'completed', stage: 3, weight: 100 };
  const aborted: RolloutState = { ...progressing, status: 'aborted', weight: 0 };
  const at = T0 + 1000;

  // [name, state before, input, result kind, status after, flag written, transition kind]
  it.each<[string, RolloutState | null, RolloutInput, RolloutResult['kind'], RolloutStatus | 'none', number | null, string | null]>([
    ['start with none', null, { kind: 'start', ...who(at) }, 'transition', 'progressing', 5, 'started'],
    ['start after a completion', completed, { kind: 'start', ...who(at) }, 'transition', 'progressing', 5, 'started'],
    ['start after an abort', aborted, { kind: 'start', ...who(at) }, 'transition', 'progressing', 5, 'started'],
    ['start after a rollback (latch reset)', rolledBack, { kind: 'start', ...who(at) }, 'transition', 'progressing', 5, 'started'],
    ['start refused while latched', rolledBack, { kind: 'start', ...who(at, true) }, 'refused', 'rolled_back', null, null],
    ['start refused while one is under way', progressing, { kind: 'start', ...who(at) }, 'refused', 'progressing', null, null],
    ['promote to the next weight', progressing, { kind: 'promote', full: false, ...who(at) }, 'transition', 'progressing', 25, 'promoted'],
    ['promote --full completes', progressing, { kind: 'promote', full: true, ...who(at) }, 'transition', 'completed', 100, 'completed'],
    [
      'promote to a weight of the plan',
      progressing,
      { kind: 'promote', full: false, toWeight: 50, ...who(at) },
      'transition',
      'progressing',
      50,
      'promoted',
    ],
    [
      'promote to a weight not in the plan',
      progressing,
      { kind: 'promote', full: false, toWeight: 30, ...who(at) },
      'refused',
      'progressing',
      null,
      null,
    ],
    [
      'promote to a weight below the current',
      started(2),
      { kind: 'promote', full: false, toWeight: 25, ...who(at) },
      'refused',
      'progressing',
      null,
      null,
    ],
    ['promote a paused rollout', paused, { kind: 'promote', full: false, ...who(at) }, 'transition', 'progressing', 25, 'promoted'],
    [
      'promote refused while latched',
      progressing,
      { kind: 'promote', full: false, ...who(at, true) },
      'refused',
      'progressing',
      null,
      null,
    ],
    ['promote refused after completion', completed, { kind: 'promote', full: false, ...who(at) }, 'refused', 'completed', null, null],
    ['pause', progressing, { kind: 'pause', ...who(at) }, 'transition', 'paused', null, 'paused'],
    ['pause refused when paused', paused, { kind: 'pause', ...who(at) }, 'refused', 'paused', null, null],
    ['resume sets the weight again', paused, { kind: 'resume', ...who(at) }, 'transition', 'progressing', 5, 'resumed'],
    ['resume refused while latched', paused, { kind: 'resume', ...who(at, true) }, 'refused', 'paused', null, null],
    ['resume refused when progressing', progressing, { kind: 'resume', ...who(at) }, 'refused', 'progressing', null, null],
    ['abort sets weight 0', progressing, { kind: 'abort', ...who(at) }, 'transition', 'aborted', 0, 'aborted'],
    ['abort a paused rollout', paused, { kind: 'abort', ...who(at) }, 'transition', 'aborted', 0, 'aborted'],
    [
      'abort while latched leaves the flag to the rollback',
      progressing,
      { kind: 'abort', ...who(at, true) },
      'transition',
      'aborted',
      null,
      'aborted',
    ],
    ['abort refused after a rollback', rolledBack, { kind: 'abort', ...who(at) }, 'refused', 'rolled_back', null, null],
  ])('%s', (_name, before, input, kind, status, flag, transition) => {
    const r = rolloutStep(STAGES, before, input);
    expect(r.kind).toBe(kind);
    expect(statusOf(r, before)).toBe(status);
    if (r.kind === 'transition') {
      expect(r.flag).toBe(flag);
      expect(r.record.kind).toBe(transition);
      expect(r.record.actor).toBe('alice@cli');
      expect(r.record.reason).toBe('ticket 42');
      expect(r.state.revision).toBe((before?.revision ?? 0) + 1);
    }
  });

  it('refuses a start, promote and resume through the script too while latched (refuseIfLatched), but not an abort', () => {
    const flags = (['start', 'promote', 'resume', 'abort'] as const).map((kind) => {
      const before = kind === 'start' ? null : kind === 'resume' ? paused : progressing;
      const r = rolloutStep(STAGES, before, kind === 'promote' ? { kind, full: false, ...who(at) } : { kind, ...who(at) });
      return r.kind === 'transition' && r.refuseIfLatched;
    });
    expect(flags).toEqual([true, true, true, false]);
  });
});

describe('evaluations (the lease holder)', () => {
  /** Enough evidence at 5 %: 61 s at the weight (min 60 s), 400 requests (needed: 30 s x 10 rps = 300). */
  const ready = (): RolloutState => started(0, { canaryRequests: 400, countedSlot: Math.floor((T0 + MIN_MS) / SLOT_MS) - 1 });
  const at = T0 + MIN_MS + SLOT_MS;

  it('promotes when every piece of evidence holds, restarting the count at the new weight', () => {
    const r = rolloutStep(STAGES, ready(), evaluation(at, 50));
    expect(r.kind).toBe('transition');
    if (r.kind !== 'transition') return;
    expect(r.record.kind).toBe('promoted');
    expect([r.record.fromWeight, r.record.toWeight, r.flag]).toEqual([5, 25, 25]);
    expect(r.state).toMatchObject({ status: 'progressing', stage: 1, weight: 25, canaryRequests: 0, stageStartedMs: at });
    expect(r.record.evidence).toMatchObject({ canaryRequests: 450, requiredRequests: 300, stillNeeded: 0, missing: [] });
    expect(r.refuseIfLatched).toBe(true);
  });

  // Each case changes one thing of the ready evaluation; the promotion is refused and the evidence names why.
  it.each<[string, Partial<Extract<RolloutInput, { kind: 'evaluation' }>>, Partial<RolloutState>, RegExp]>([
    ['no verdict (Redis unreachable)', { verdict: null }, {}, /a verdict: none yet/],
    ['a warn verdict', { verdict: verdict('warn') }, {}, /verdict is warn/],
    ['an inconclusive verdict', { verdict: verdict('inconclusive') }, {}, /verdict is inconclusive/],
    ['a failing verdict not yet latched', { verdict: verdict('fail') }, {}, /verdict is fail/],
    [
      'no data, even when its action is pass',
      {
        verdict: verdict('pass', {
          extra: [
            { check: 'no_data', outcome: 'pass', observed: Number.NaN, threshold: Number.NaN, unit: 'ratio', reason: 'no canary slot' },
          ],
        }),
      },
      {},
      /data: no canary slot/,
    ],
    [
      'a traffic-share mismatch',
      {
        verdict: verdict('pass', {
          extra: [
            { check: 'traffic_share', outcome: 'warn', observed: 0.01, threshold: 0.05, unit: 'ratio', reason: 'sample-ratio mismatch' },
          ],
        }),
      },
      {},
      /traffic split that matches the flag/,
    ],
    ['too little time at the weight', { atMs: T0 + 30_000 }, {}, /time: 30 s of 60 s at 5 %/],
    ['too few canary requests', {}, { canaryRequests: 100 }, /canary requests: 150 of 300/],
    ['an underpowered check', { verdict: verdict('pass', { underpowered: true }) }, {}, /underpowered/],
    ['a check that never detects at this traffic', { verdict: verdict('pass', { secondsToDetect: null }) }, {}, /underpowered/],
  ])('refuses to promote with %s', (_name, input, state, missing) => {
    const before = { ...ready(), ...state };
    const r = rolloutStep(STAGES, before, evaluation(input.atMs ?? at, 50, input));
    expect(r.kind).toBe('progress');
    if (r.kind !== 'progress') return;
    expect(r.state.status).toBe('progressing');
    expect(r.state.weight).toBe(5);
    expect(r.state.evidence?.missing.join('\n')).toMatch(missing);
  });

  it('counts canary requests of whole slots at the weight only, each slot once', () => {
    const s = started(0, { stageStartedMs: T0 + 2_000 });
    const slots = [
      { slot: T0 / SLOT_MS, startMs: T0, canaryRequests: 1000 }, // began before the weight: not counted
      { slot: T0 / SLOT_MS + 1, startMs: T0 + SLOT_MS, canaryRequests: 7 },
      { slot: T0 / SLOT_MS + 2, startMs: T0 + 2 * SLOT_MS, canaryRequests: 9 },
    ];
    const first = rolloutStep(STAGES, s, evaluation(T0 + 3 * SLOT_MS, 0, { slots }));
    if (first.kind !== 'progress') throw new Error(first.kind);
    expect(first.state.canaryRequests).toBe(16);
    const again = rolloutStep(STAGES, first.state, evaluation(T0 + 3 * SLOT_MS, 0, { slots }));
    if (again.kind !== 'progress') throw new Error(again.kind);
    expect(again.state.canaryRequests).toBe(16);
  });

  it('records rolled_back at once when the latch is set, without touching the flag; a reset does not restart it', () => {
    const r = rolloutStep(STAGES, ready(), evaluation(at, 50, { latched: true }));
    if (r.kind !== 'transition') throw new Error(r.kind);
    expect([r.record.kind, r.state.status, r.flag, r.state.weight]).toEqual(['rolled_back', 'rolled_back', null, 5]);
    // After the reset: no latch, a passing verdict, plenty of evidence; nothing happens until a person starts again.
    expect(rolloutStep(STAGES, r.state, evaluation(at + 60_000, 5000)).kind).toBe('unchanged');
  });

  it('rolls back during a pause too', () => {
    const paused: RolloutState = { ...ready(), status: 'paused', pauseCause: 'person' };
    const r = rolloutStep(STAGES, paused, evaluation(at, 50, { latched: true }));
    expect(r.kind === 'transition' && r.record.kind).toBe('rolled_back');
  });

  it("pauses when the flag was changed outside the rollout, and resume restarts that weight's evidence", () => {
    const r = rolloutStep(STAGES, ready(), evaluation(at, 50, { flagWeight: 40 }));
    if (r.kind !== 'transition') throw new Error(r.kind);
    expect([r.record.kind, r.state.pauseCause, r.flag]).toEqual(['paused', 'flag', null]);
    expect(r.record.reason).toMatch(/flag is 40 %.*rollout set 5 %/);
    const resumed = rolloutStep(STAGES, r.state, { kind: 'resume', ...who(at + 1000) });
    if (resumed.kind !== 'transition') throw new Error(resumed.kind);
    expect([resumed.flag, resumed.state.canaryRequests, resumed.state.stageStartedMs]).toEqual([5, 0, at + 1000]);
  });

  it('does not promote a paused rollout, but keeps counting its evidence', () => {
    const paused: RolloutState = { ...ready(), status: 'paused', pauseCause: 'person' };
    const r = rolloutStep(STAGES, paused, evaluation(at, 50));
    expect(r.kind === 'progress' && [r.state.status, r.state.canaryRequests]).toEqual(['paused', 450]);
  });

  it('pauses for a person at a pause step once the evidence holds, and promotes after resume', () => {
    const at25 = started(1, { canaryRequests: 400, stageStartedMs: T0 });
    const r = rolloutStep(STAGES, at25, evaluation(at, 50, { flagWeight: 25 }));
    if (r.kind !== 'transition') throw new Error(r.kind);
    expect([r.record.kind, r.state.status, r.state.pauseCause]).toEqual(['paused', 'paused', 'step']);
    const resumed = rolloutStep(STAGES, r.state, { kind: 'resume', ...who(at + 1000) });
    if (resumed.kind !== 'transition') throw new Error(resumed.kind);
    expect(resumed.state.released).toBe(true);
    const promoted = rolloutStep(STAGES, resumed.state, evaluation(at + SLOT_MS, 50, { flagWeight: 25 }));
    expect(promoted.kind === 'transition' && [promoted.record.kind, promoted.state.weight]).toEqual(['promoted', 50]);
  });

  it('completes when the evidence holds at the last weight below 100 %', () => {
    const at50 = started(2, { canaryRequests: 400 });
    const r = rolloutStep(STAGES, at50, evaluation(at, 50, { flagWeight: 50 }));
    expect(r.kind === 'transition' && [r.record.kind, r.state.status, r.flag]).toEqual(['completed', 'completed', 100]);
  });

  it.each<RolloutStatus>(['completed', 'aborted', 'rolled_back'])('leaves a %s rollout alone', (status) => {
    expect(rolloutStep(STAGES, { ...ready(), status }, evaluation(at, 50)).kind).toBe('unchanged');
  });

  it('does nothing without a rollout', () => {
    expect(rolloutStep(STAGES, null, evaluation(at, 50)).kind).toBe('unchanged');
  });
});

describe('requests still needed to promote', () => {
  it('is the longest expected detection time of the checks times the canary rate, at least minSamples', () => {
    expect(requiredCanaryRequests(verdict('pass', { secondsToDetect: 30 }), 100).required).toBe(300);
    expect(requiredCanaryRequests(verdict('pass', { secondsToDetect: 2 }), 100).required).toBe(100);
    expect(requiredCanaryRequests(verdict('pass', { underpowered: true }), 100).required).toBeNull();
    const e = promotionEvidence(STAGES[0]!, verdict('pass', { secondsToDetect: 30 }), 120_000, 120, 100);
    expect([e.requiredRequests, e.stillNeeded]).toEqual([300, 180]);
  });

  it('falls back to minSamples when no check carries sequential evidence (thresholds only)', () => {
    const v = verdict('pass');
    const plain = { ...v, checks: v.checks.map(({ evidence: _e, ...c }) => c) };
    expect(requiredCanaryRequests(plain, 250).required).toBe(250);
  });
});
