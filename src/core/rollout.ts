/**
 * The rollout state machine: pure, table-driven. A state and an input go in; the next state, the transition to record
 * and the weight to write come out. Nothing here reads a clock or Redis: the lease holder (src/rollout/driver.ts) and
 * the operator controls (src/rollout/control.ts) feed it and write what it returns with one Lua script per transition.
 *
 *   (none | completed | aborted | rolled_back) --start--> progressing at the first weight
 *   progressing --evaluation, evidence holds--> progressing at the next weight | completed at 100 %
 *   progressing --evaluation, evidence holds at a `pause: {}` weight--> paused (waits for a person)
 *   progressing --evaluation, the flag differs from the rollout's weight--> paused (changed outside the rollout)
 *   progressing | paused --evaluation, the rollback latch is set--> rolled_back
 *   progressing | paused --promote [--full]--> progressing at the next weight (or completed at 100 %)
 *   progressing --pause--> paused;  paused --resume--> progressing;  progressing | paused --abort--> aborted (weight 0)
 *
 * The latch stops a rollout at once: start, promote and resume are refused while it is set (and the Lua script refuses
 * them too, atomically), and the next evaluation records rolled_back. A reset clears the latch but not the rollout: it
 * stays rolled_back until a person starts a new one.
 */
import { promotionEvidence, type PromotionEvidence } from './rollout-evidence.ts';
import type { RolloutStage } from './rollout-plan.ts';
import type { Verdict } from './verdict.ts';

export type RolloutStatus = 'progressing' | 'paused' | 'completed' | 'rolled_back' | 'aborted';
/** Declared order for the exported status gauge. */
export const ROLLOUT_STATUSES: readonly RolloutStatus[] = ['progressing', 'paused', 'completed', 'rolled_back', 'aborted'];

/** What a transition did (the notification kinds are `rollout_` + these). */
export type RolloutTransitionKind = 'started' | 'promoted' | 'paused' | 'resumed' | 'completed' | 'aborted' | 'rolled_back';
export const ROLLOUT_TRANSITIONS: readonly RolloutTransitionKind[] = [
  'started',
  'promoted',
  'paused',
  'resumed',
  'completed',
  'aborted',
  'rolled_back',
];

/** Why a rollout is paused. */
export type PauseCause = 'person' | 'step' | 'flag';

/** One transition as the audit stream, the state and the notifications record it. */
export interface RolloutRecord {
  readonly kind: RolloutTransitionKind;
  /** ms since the epoch. */
  readonly atMs: number;
  /** Who: the operator (`alice@cli`), or the lease holder's pod for an automatic transition. */
  readonly actor: string;
  readonly reason: string;
  /** The weight before and after, percent; `from` null at a start. */
  readonly fromWeight: number | null;
  readonly toWeight: number;
  /** The evidence at the weight that was left (automatic promotions; null for manual transitions without a verdict). */
  readonly evidence: PromotionEvidence | null;
}

/** A rollout as Redis holds it (JSON under `<prefix>:{<service>}:rollout`). */
export interface RolloutState {
  /** Identifies this rollout (its start time and starter): notification dedup keys carry it. */
  readonly id: string;
  readonly status: RolloutStatus;
  /** Index into the plan's stages, and that stage's weight (percent 0..100; 0 after an abort). */
  readonly stage: number;
  readonly weight: number;
  /** When the rollout started and when it reached this weight, ms since the epoch. */
  readonly startedMs: number;
  readonly stageStartedMs: number;
  /** Canary requests served at this weight, counted in whole slots that began at or after stageStartedMs. */
  readonly canaryRequests: number;
  /** The last slot counted, or null. */
  readonly countedSlot: number | null;
  /** A person let this stage's `pause: {}` go (resume), so the next promotion needs only the evidence. */
  readonly released: boolean;
  readonly pauseCause: PauseCause | null;
  /** Grows by one with every transition: operators' writes compare it (compare-and-set). */
  readonly revision: number;
  readonly last: RolloutRecord;
  /** The evidence at the latest evaluation (null before the first at this weight). */
  readonly evidence: PromotionEvidence | null;
}

interface Who {
  readonly atMs: number;
  readonly actor: string;
  readonly reason: string;
  /** Whether the rollback latch is set now. */
  readonly latched: boolean;
}

/** A slot's canary requests, for the evidence count. */
export interface SlotCount {
  readonly slot: number;
  /** When the slot began, ms since the epoch. */
  readonly startMs: number;
  readonly canaryRequests: number;
}

export type RolloutInput =
  | ({ readonly kind: 'start' } & Who)
  | ({
      readonly kind: 'promote';
      /** To 100 % at once. */
      readonly full: boolean;
      /** To this weight of the plan (above the current one); absent: the next weight. */
      readonly toWeight?: number;
    } & Who)
  | ({ readonly kind: 'pause' | 'resume' | 'abort' } & Who)
  | ({
      readonly kind: 'evaluation';
      /** The verdict of this evaluation, or null when there was none. */
      readonly verdict: Verdict | null;
      /** The flag's weight as read now, or null when unset or not a weight. */
      readonly flagWeight: number | null;
      /** Slots judged since the last evaluation, oldest first (a slot already counted is skipped). */
      readonly slots: readonly SlotCount[];
      readonly minSamples: number;
    } & Who);

export type RolloutResult =
  | {
      readonly kind: 'transition';
      readonly state: RolloutState;
      readonly record: RolloutRecord;
      /** The weight to write to the flag, or null to leave it. */
      readonly flag: number | null;
      /** Refuse the write if the latch is set when it lands (start, promote, resume, automatic pause). */
      readonly refuseIfLatched: boolean;
    }
  /** Only the evidence moved: written without an audit entry or an event. */
  | { readonly kind: 'progress'; readonly state: RolloutState }
  | { readonly kind: 'refused'; readonly reason: string }
  | { readonly kind: 'unchanged' };

const ACTIVE: readonly RolloutStatus[] = ['progressing', 'paused'];
/** Whether a rollout is under way (progressing or paused). */
export const isActive = (state: RolloutState | null): state is RolloutState => state !== null && ACTIVE.includes(state.status);

function transition(
  before: RolloutState | null,
  next: Omit<RolloutState, 'revision' | 'last'>,
  kind: RolloutTransitionKind,
  who: Who,
  options: { flag: number | null; refuseIfLatched: boolean; evidence?: PromotionEvidence | null },
): RolloutResult {
  const record: RolloutRecord = {
    kind,
    atMs: who.atMs,
    actor: who.actor,
    reason: who.reason,
    fromWeight: before?.weight ?? null,
    toWeight: next.weight,
    evidence: options.evidence ?? before?.evidence ?? null,
  };
  return {
    kind: 'transition',
    state: { ...next, revision: (before?.revision ?? 0) + 1, last: record },
    record,
    flag: options.flag,
    refuseIfLatched: options.refuseIfLatched,
  };
}

/** The state at `stage` from `atMs`, with its evidence count restarted. */
function atStage(
  state: RolloutState,
  stages: readonly RolloutStage[],
  stage: number,
  atMs: number,
): Omit<RolloutState, 'revision' | 'last'> {
  const weight = stages[stage]!.weight;
  return {
    ...state,
    status: weight >= 100 ? 'completed' : 'progressing',
    stage,
    weight,
    stageStartedMs: atMs,
    canaryRequests: 0,
    released: false,
    pauseCause: null,
    evidence: null,
  };
}

/**
 * One step of the rollout.
 * @param stages the plan (src/core/rollout-plan.ts); a state's stage index is read against it
 * @param state the rollout in Redis, or null when none was ever started
 * @returns a transition to write, a progress update, a refusal with its reason, or nothing
 */
export function rolloutStep(stages: readonly RolloutStage[], state: RolloutState | null, input: RolloutInput): RolloutResult {
  const last = stages.length - 1;
  const status = state?.status ?? 'none started';
  switch (input.kind) {
    case 'start': {
      if (isActive(state)) return { kind: 'refused', reason: `a rollout is ${state.status} at ${state.weight} %: abort it first` };
      if (input.latched) return { kind: 'refused', reason: 'the rollback latch is set: reset it before starting a rollout' };
      const weight = stages[0]!.weight;
      const started: Omit<RolloutState, 'revision' | 'last'> = {
        id: `${input.atMs}`,
        status: weight >= 100 ? 'completed' : 'progressing',
        stage: 0,
        weight,
        startedMs: input.atMs,
        stageStartedMs: input.atMs,
        canaryRequests: 0,
        countedSlot: null,
        released: false,
        pauseCause: null,
        evidence: null,
      };
      return transition(state, started, 'started', input, { flag: weight, refuseIfLatched: true, evidence: null });
    }
    case 'promote': {
      if (!isActive(state)) return { kind: 'refused', reason: `no rollout under way (${status})` };
      if (input.latched) return { kind: 'refused', reason: 'the rollback latch is set: the rollout cannot be promoted' };
      let target = input.full ? last : Math.min(last, state.stage + 1);
      if (!input.full && input.toWeight !== undefined) {
        target = stages.findIndex((s) => s.weight === input.toWeight);
        if (target === -1)
          return { kind: 'refused', reason: `${input.toWeight} % is not a weight of the plan (${stages.map((s) => s.weight).join(', ')})` };
        if (target <= state.stage) return { kind: 'refused', reason: `${input.toWeight} % is not above the rollout's ${state.weight} %` };
      }
      const next = atStage(state, stages, target, input.atMs);
      return transition(state, next, next.status === 'completed' ? 'completed' : 'promoted', input, {
        flag: next.weight,
        refuseIfLatched: true,
      });
    }
    case 'pause':
      if (state?.status !== 'progressing') return { kind: 'refused', reason: `only a progressing rollout pauses (${status})` };
      return transition(state, { ...state, status: 'paused', pauseCause: 'person' }, 'paused', input, {
        flag: null,
        refuseIfLatched: false,
      });
    case 'resume': {
      if (state?.status !== 'paused') return { kind: 'refused', reason: `only a paused rollout resumes (${status})` };
      if (input.latched) return { kind: 'refused', reason: 'the rollback latch is set: the rollout cannot resume' };
      // A weight that was changed outside the rollout gathered its evidence at another weight: start it again.
      const restart = state.pauseCause === 'flag' ? { stageStartedMs: input.atMs, canaryRequests: 0, evidence: null } : {};
      const released = state.released || state.pauseCause === 'step';
      return transition(state, { ...state, ...restart, status: 'progressing', pauseCause: null, released }, 'resumed', input, {
        flag: state.weight,
        refuseIfLatched: true,
      });
    }
    case 'abort':
      if (!isActive(state)) return { kind: 'refused', reason: `no rollout under way (${status})` };
      return transition(state, { ...state, status: 'aborted', weight: 0, pauseCause: null }, 'aborted', input, {
        flag: input.latched ? null : 0,
        refuseIfLatched: false,
      });
    case 'evaluation':
      return evaluationStep(stages, state, input);
  }
}

function evaluationStep(
  stages: readonly RolloutStage[],
  state: RolloutState | null,
  input: Extract<RolloutInput, { kind: 'evaluation' }>,
): RolloutResult {
  if (!isActive(state)) return { kind: 'unchanged' };
  if (input.latched)
    return transition(state, { ...state, status: 'rolled_back', pauseCause: null }, 'rolled_back', input, {
      flag: null,
      refuseIfLatched: false,
    });
  if (state.status === 'progressing' && input.flagWeight !== state.weight) {
    const seen = input.flagWeight === null ? 'unset or not a weight' : `${input.flagWeight} %`;
    const reason = `the flag is ${seen} but the rollout set ${state.weight} %: changed outside the rollout; resume sets it back`;
    return transition(
      state,
      { ...state, status: 'paused', pauseCause: 'flag' },
      'paused',
      { ...input, reason },
      {
        flag: null,
        refuseIfLatched: true,
      },
    );
  }
  let { canaryRequests, countedSlot } = state;
  for (const s of input.slots) {
    if (countedSlot !== null && s.slot <= countedSlot) continue;
    countedSlot = s.slot;
    if (s.startMs >= state.stageStartedMs) canaryRequests += s.canaryRequests;
  }
  const stage = stages[Math.min(state.stage, stages.length - 1)]!;
  const evidence = promotionEvidence(stage, input.verdict, input.atMs - state.stageStartedMs, canaryRequests, input.minSamples);
  const counted: RolloutState = { ...state, canaryRequests, countedSlot, evidence };
  if (state.status !== 'progressing' || evidence.missing.length > 0) return { kind: 'progress', state: counted };
  if (stage.waitForPerson && !state.released) {
    const reason = `evidence holds at ${state.weight} %; the plan waits for a person here (resume or promote)`;
    return transition(
      counted,
      { ...counted, status: 'paused', pauseCause: 'step' },
      'paused',
      { ...input, reason },
      {
        flag: null,
        refuseIfLatched: true,
        evidence,
      },
    );
  }
  const next = atStage(counted, stages, Math.min(stages.length - 1, state.stage + 1), input.atMs);
  const reason = `evidence holds at ${state.weight} %: pass verdict, ${canaryRequests} canary requests (needed ${evidence.requiredRequests}), ${Math.round(evidence.atWeightMs / 1000)} s at the weight`;
  return transition(
    counted,
    next,
    next.status === 'completed' ? 'completed' : 'promoted',
    { ...input, reason },
    {
      flag: next.weight,
      refuseIfLatched: true,
      evidence,
    },
  );
}
