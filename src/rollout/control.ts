/**
 * The operator controls of a rollout (`canary-gate rollout start|status|promote [--full]|pause|resume|abort` and the
 * admin API's /rollout/* routes): each runs the pure state machine on the state read from Redis and writes the result
 * with the transition script, unfenced (token 0) but compared on the state's revision, so two operators (or an
 * operator and the lease holder) never overwrite each other: a write that lost the race is computed again from the
 * new state, at most three times.
 */
import { describeStages, formatDuration, type RolloutStage } from '../core/rollout-plan.ts';
import { rolloutStep, type RolloutInput, type RolloutRecord, type RolloutState } from '../core/rollout.ts';
import type { PromotionEvidence } from '../core/rollout-evidence.ts';
import type { RedisRolloutStore } from './redis-rollout-store.ts';

export type RolloutCommand = 'start' | 'promote' | 'pause' | 'resume' | 'abort';
export const ROLLOUT_COMMANDS: readonly RolloutCommand[] = ['start', 'promote', 'pause', 'resume', 'abort'];

/** Who asks and why (both required, both audited), and `full` for a promotion to 100 %. */
export interface ControlRequest {
  readonly actor: string;
  readonly reason: string;
  readonly full?: boolean;
  /** promote only: to this weight of the plan (validated by parseWeight before it gets here). */
  readonly toWeight?: number;
}

export type ControlResult =
  | { readonly outcome: 'written'; readonly state: RolloutState; readonly record: RolloutRecord; readonly flag: number | null }
  /** The state machine or the script refused: nothing was written. */
  | { readonly outcome: 'refused'; readonly reason: string };

/** What `rollout status` and GET /rollout/status show. */
export interface RolloutView {
  readonly status: RolloutState['status'] | 'none';
  readonly plan: string;
  readonly stage: number | null;
  readonly stages: number;
  readonly weight: number | null;
  readonly flag: string | null;
  readonly latched: boolean;
  /** Time at the current weight, ms (null without a rollout). */
  readonly atWeightMs: number | null;
  /** The evidence at the lease holder's latest evaluation, null before one. */
  readonly evidence: PromotionEvidence | null;
  /** "Requests still needed to promote" (null: unknown yet, or cannot be gathered at this traffic). */
  readonly stillNeeded: number | null;
  /** What the next promotion waits for, one line each. */
  readonly waitingFor: readonly string[];
  readonly last: RolloutRecord | null;
  readonly state: RolloutState | null;
}

export class RolloutControl {
  private readonly store: RedisRolloutStore;
  private readonly stages: readonly RolloutStage[];
  private readonly clock: () => number;

  /** @param clock wall clock, ms since the epoch */
  constructor(store: RedisRolloutStore, stages: readonly RolloutStage[], clock: () => number = Date.now) {
    this.store = store;
    this.stages = stages;
    this.clock = clock;
  }

  /** Runs one command. Rejects when Redis is unreachable. */
  async apply(command: RolloutCommand, request: ControlRequest): Promise<ControlResult> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const snapshot = await this.store.read();
      if (snapshot.corrupt)
        return { outcome: 'refused', reason: 'the stored rollout is not one (edited by hand?): delete the key to start over' };
      const who = { atMs: this.clock(), actor: request.actor, reason: request.reason, latched: snapshot.latched };
      const input: RolloutInput =
        command === 'promote'
          ? { kind: 'promote', full: request.full === true, toWeight: request.toWeight, ...who }
          : { kind: command, ...who };
      const result = rolloutStep(this.stages, snapshot.state, input);
      if (result.kind === 'refused') return { outcome: 'refused', reason: result.reason };
      if (result.kind !== 'transition') return { outcome: 'refused', reason: 'nothing to do' };
      const outcome = await this.store.transition(
        result.state,
        result.record,
        snapshot.state?.revision ?? 0,
        0,
        result.flag,
        result.refuseIfLatched,
      );
      if (outcome === 'written') return { outcome, state: result.state, record: result.record, flag: result.flag };
      if (outcome === 'latched') return { outcome: 'refused', reason: 'the rollback latch is set' };
      // stale: someone else wrote first; compute again from what is there now
    }
    return { outcome: 'refused', reason: 'the rollout kept changing while this request was written; try again' };
  }

  /** The rollout as people read it. Rejects when Redis is unreachable. */
  async view(): Promise<RolloutView> {
    const { state, latched, flag } = await this.store.read();
    const plan = describeStages(this.stages);
    if (state === null)
      return {
        status: 'none',
        plan,
        stage: null,
        stages: this.stages.length,
        weight: null,
        flag,
        latched,
        atWeightMs: null,
        evidence: null,
        stillNeeded: null,
        waitingFor: ['a person: rollout start'],
        last: null,
        state: null,
      };
    const stage = this.stages[state.stage];
    const waitingFor: string[] = [];
    if (latched) waitingFor.push('the rollback latch is set: nothing promotes');
    switch (state.status) {
      case 'progressing':
        if (state.evidence === null) waitingFor.push("the lease holder's first evaluation at this weight");
        else waitingFor.push(...state.evidence.missing);
        if (stage?.waitForPerson && !state.released) waitingFor.push('then a person (the plan pauses here): resume or promote');
        break;
      case 'paused':
        waitingFor.push(`a person: resume or promote (paused: ${state.last.reason})`);
        break;
      default:
        waitingFor.push(`nothing: the rollout is ${state.status}; rollout start begins a new one`);
    }
    return {
      status: state.status,
      plan,
      stage: state.stage,
      stages: this.stages.length,
      weight: state.weight,
      flag,
      latched,
      atWeightMs: this.clock() - state.stageStartedMs,
      evidence: state.evidence,
      stillNeeded: state.evidence?.stillNeeded ?? null,
      waitingFor,
      last: state.last,
      state,
    };
  }
}

/** The view as lines for a terminal. */
export function viewLines(view: RolloutView): string[] {
  const lines = [`rollout: ${view.status}`, `plan: ${view.plan}`];
  if (view.state !== null) {
    lines.push(
      `step: ${view.stage! + 1} of ${view.stages}, weight ${view.weight} % (flag ${view.flag ?? 'unset'}), ${formatDuration((view.atWeightMs ?? 0) / 1000)} at this weight`,
    );
    const e = view.evidence;
    if (e !== null)
      lines.push(
        `evidence: verdict ${e.verdict ?? 'none'}, canary requests ${e.canaryRequests} of ${e.requiredRequests ?? 'unknown'} needed; requests still needed to promote: ${e.stillNeeded ?? 'cannot be gathered at this traffic'}`,
      );
    const last = view.last!;
    lines.push(`last: ${last.kind} by ${last.actor} at ${new Date(last.atMs).toISOString()}: ${last.reason}`);
  }
  if (view.latched) lines.push('latch: set (a rollback is latched)');
  lines.push('next promotion waits for:', ...view.waitingFor.map((w) => `  - ${w}`));
  return lines;
}
