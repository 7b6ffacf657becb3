/**
 * The lease holder's side of a rollout: after each of its evaluations, it reads the rollout, the latch and the flag,
 * steps the state machine with the verdict and the slots just judged, and writes the result with its fencing token:
 * a transition (promotion, completion, a pause, rolled_back) through the transition script, or the evidence counted so
 * far through the progress script. A paused or deposed holder's write is refused by the fence; the state lives in
 * Redis, so a restarted or newly elected holder carries on where the last one stopped.
 *
 * Announcing: the driver hands every transition it writes to `notify`, and the transitions others wrote (an
 * operator's promote, pause, resume, abort or start) when it next reads them, as the evaluator does with a reset.
 * The first read of a tenure learns what is there and announces nothing: the writer, or the previous holder, did.
 */
import type { Logger } from '../config/logger.ts';
import type { RolloutStage } from '../core/rollout-plan.ts';
import {
  ROLLOUT_TRANSITIONS,
  rolloutStep,
  type RolloutRecord,
  type RolloutResult,
  type RolloutState,
  type RolloutTransitionKind,
  type SlotCount,
} from '../core/rollout.ts';
import type { GateEvent } from '../core/transitions.ts';
import type { Verdict } from '../core/verdict.ts';
import { parseWeight } from '../core/weight.ts';
import type { RedisRolloutStore } from './redis-rollout-store.ts';

/** One evaluation the lease holder made, as the driver needs it. */
export interface HeldEvaluation {
  /** The verdict, or null when the window could not be read. */
  readonly verdict: Verdict | null;
  readonly fencingToken: number;
  /** The slots of the judged window with their canary requests, oldest first. */
  readonly slots: readonly SlotCount[];
  /** Now, ms since the epoch. */
  readonly nowMs: number;
}

export interface RolloutDriverOptions {
  /** This pod's name: the actor of automatic transitions. */
  readonly pod: string;
  /** policy.minSamples: the floor of the canary requests a weight needs. */
  readonly minSamples: number;
  /** Copied into the events (policy.advisory). */
  readonly advisory: boolean;
}

/** What the driver knows, for /status and the metrics. */
export interface RolloutDriverStatus {
  readonly state: RolloutState | null;
  /** Transitions this sidecar wrote or, as lease holder, read (an operator's), by kind, since start. */
  readonly transitions: Readonly<Record<RolloutTransitionKind, number>>;
  readonly lastError: string | null;
}

export class RolloutDriver {
  private readonly store: RedisRolloutStore;
  private readonly stages: readonly RolloutStage[];
  private readonly options: RolloutDriverOptions;
  private readonly logger: Logger;
  private readonly notify: (event: GateEvent) => void;
  private seen: { token: number; revision: number } | null = null;
  private state: RolloutState | null = null;
  private readonly transitions: Record<RolloutTransitionKind, number> = Object.fromEntries(
    ROLLOUT_TRANSITIONS.map((k) => [k, 0]),
  ) as Record<RolloutTransitionKind, number>;
  private lastError: string | null = null;

  /** @param notify takes each transition; must return at once and never throw (a Notifier) */
  constructor(
    store: RedisRolloutStore,
    stages: readonly RolloutStage[],
    options: RolloutDriverOptions,
    logger: Logger,
    notify: (event: GateEvent) => void = () => undefined,
  ) {
    this.store = store;
    this.stages = stages;
    this.options = options;
    this.logger = logger;
    this.notify = notify;
  }

  status(): RolloutDriverStatus {
    return { state: this.state, transitions: { ...this.transitions }, lastError: this.lastError };
  }

  /**
   * Steps the rollout after one held evaluation and writes the result, fenced. Never throws: a Redis error is kept in
   * lastError and the next evaluation tries again.
   * @returns what the state machine decided (null when Redis failed)
   */
  async afterEvaluation(held: HeldEvaluation): Promise<RolloutResult | null> {
    try {
      const snapshot = await this.store.read();
      if (snapshot.corrupt) {
        this.lastError = 'the stored rollout does not parse; nothing promotes until it is deleted or started again';
        return null;
      }
      this.learn(snapshot.state, held.fencingToken);
      const flag = snapshot.flag === null ? null : parseWeight(snapshot.flag);
      const result = rolloutStep(this.stages, snapshot.state, {
        kind: 'evaluation',
        atMs: held.nowMs,
        actor: this.options.pod,
        reason: '',
        latched: snapshot.latched,
        verdict: held.verdict,
        flagWeight: flag?.ok ? flag.weight : null,
        slots: held.slots,
        minSamples: this.options.minSamples,
      });
      if (result.kind === 'transition') {
        const outcome = await this.store.transition(
          result.state,
          result.record,
          snapshot.state?.revision ?? 0,
          held.fencingToken,
          result.flag,
          result.refuseIfLatched,
        );
        if (outcome === 'written') {
          this.state = result.state;
          this.seen = { token: held.fencingToken, revision: result.state.revision };
          this.logger.warn(
            { rollout: result.record.kind, from: result.record.fromWeight, to: result.record.toWeight },
            result.record.reason,
          );
          this.announce(result.state, result.record);
        } else {
          this.logger.warn({ outcome, rollout: result.record.kind }, 'rollout transition not written');
        }
      } else if (result.kind === 'progress') {
        const outcome = await this.store.progress(result.state, held.fencingToken);
        if (outcome === 'written') this.state = result.state;
      }
      this.lastError = null;
      return result;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.logger.warn({ err: this.lastError }, 'rollout: redis unreachable; nothing promotes');
      return null;
    }
  }

  /** Notes the state read; announces a transition someone else wrote since the last read of this tenure. */
  private learn(state: RolloutState | null, token: number): void {
    this.state = state;
    const before = this.seen;
    this.seen = { token, revision: state?.revision ?? 0 };
    if (state === null || before === null || before.token !== token || state.revision <= before.revision) return;
    this.announce(state, state.last);
  }

  private announce(state: RolloutState, record: RolloutRecord): void {
    this.transitions[record.kind]++;
    try {
      this.notify({
        kind: `rollout_${record.kind}`,
        atMs: record.atMs,
        advisory: this.options.advisory,
        rollout: { id: state.id, status: state.status, stage: state.stage, weight: state.weight, revision: state.revision },
        record,
      });
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, kind: record.kind }, 'rollout notification not queued');
    }
  }
}
