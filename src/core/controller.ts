/**
 * The rollback controller: a pure state machine over verdicts.
 *
 *   healthy --fail--> breaching --fail x K (consecutive)--> rolled_back (latched)
 *   breaching --pass|warn--> healthy (streak reset)
 *   inconclusive: neither counts nor resets the streak
 *   rolled_back: stays until a person resets it (the latch lives in Redis; see `latched` / `reset` below)
 *
 * K = `consecutiveBreaches` (default 1: the sequential checks accumulate evidence themselves; 3 with thresholds only,
 * as Flagger's `threshold` counts failed checks before a rollback).
 */
import type { Verdict } from './verdict.ts';

export type Phase = 'healthy' | 'breaching' | 'rolled_back';

/** Declared order of phases for the exported state gauge: 0 healthy, 1 breaching, 2 rolled_back. */
export const PHASES: readonly Phase[] = ['healthy', 'breaching', 'rolled_back'];

export interface ControllerState {
  readonly phase: Phase;
  /** Failing evaluations in a row (inconclusive ones skipped). */
  readonly consecutiveBreaches: number;
  /** When the phase last changed, ms since the epoch. */
  readonly sinceMs: number;
}

/** What the flag store writes, atomically, when the controller rolls back. */
export interface RollbackDecision {
  readonly state: 'rolled_back';
  /** `automatic` from the controller, `manual` from POST /rollback or the CLI. */
  readonly trigger: 'automatic' | 'manual';
  readonly reason: string;
  /** Every check of the last verdict, with its evidence (empty for a manual rollback). */
  readonly checks: Verdict['checks'];
  readonly baseline: Verdict['baseline'] | null;
  readonly canary: Verdict['canary'] | null;
  readonly consecutiveBreaches: number;
  /** When it was decided, ms since the epoch, and as ISO text. */
  readonly atMs: number;
  readonly at: string;
  /** The pod that decided (the lease holder) or the actor of a manual rollback. */
  readonly by: string;
  /** sha256 (first 16 hex digits) of the deciding sidecar's validated config, to tell which policy decided. */
  readonly configHash?: string;
}

export interface ControllerPolicy {
  /** Failing evaluations in a row that trigger a rollback (>= 1). */
  readonly consecutiveBreaches: number;
  /**
   * Failing evaluations in a row that trigger a rollback when no_data checks alone fail them (canary pods that take
   * traffic and report nothing), >= 1. Default {@link NO_DATA_BREACHES}: when a rollout starts, its canary pods get a
   * few slots to report before their silence counts.
   */
  readonly consecutiveNoData?: number;
}

/** Default of ControllerPolicy.consecutiveNoData: 3 evaluations, as Flagger counts missing metrics as failed checks. */
export const NO_DATA_BREACHES = 3;

/** Whether every failing check of a failing verdict is a no-data rule. */
const failsOnNoDataAlone = (verdict: Verdict): boolean =>
  verdict.checks.filter((c) => c.outcome === 'fail').every((c) => c.check === 'no_data');

export function initialState(nowMs: number): ControllerState {
  return { phase: 'healthy', consecutiveBreaches: 0, sinceMs: nowMs };
}

/** The state of a controller that found a decision record (the latch) in Redis. */
export function latchedState(decidedAtMs: number): ControllerState {
  return { phase: 'rolled_back', consecutiveBreaches: 0, sinceMs: decidedAtMs };
}

/** Who asked for a manual rollback, and what the gate last saw. */
export interface ManualRollback {
  /** Why, as the person gave it; the decision's reason is `manual rollback: <reason>`. */
  readonly reason: string;
  /** The actor (POST /rollback's actor, or `$USER@cli`). */
  readonly by: string;
  /** When it was asked for, ms since the epoch. */
  readonly atMs: number;
  /** The evaluator's latest verdict, whose figures the decision records; null when none (the CLI, a fresh sidecar). */
  readonly latest?: Verdict | null;
  /** The asking side's config hash (RollbackDecision.configHash). */
  readonly configHash?: string;
}

/**
 * The decision of a rollback asked for by a person (POST /rollback, `canary-gate rollback`): latched like an automatic
 * one, with no checks and no streak; written unfenced (token 0) by the flag store.
 */
export function manualDecision(manual: ManualRollback): RollbackDecision {
  const { atMs } = manual;
  const decision: RollbackDecision = {
    state: 'rolled_back',
    trigger: 'manual',
    reason: `manual rollback: ${manual.reason}`,
    checks: [],
    baseline: manual.latest?.baseline ?? null,
    canary: manual.latest?.canary ?? null,
    consecutiveBreaches: 0,
    atMs,
    at: new Date(atMs).toISOString(),
    by: manual.by,
  };
  return manual.configHash === undefined ? decision : { ...decision, configHash: manual.configHash };
}

export interface Step {
  readonly state: ControllerState;
  /** Set on the one step that moves into rolled_back. */
  readonly decision: RollbackDecision | null;
}

/**
 * Advances the controller by one verdict.
 * @param pod identity recorded in the decision (`by`)
 */
export function step(policy: ControllerPolicy, state: ControllerState, verdict: Verdict, pod: string): Step {
  if (state.phase === 'rolled_back') return { state, decision: null };
  const at = verdict.atMs;
  switch (verdict.outcome) {
    case 'inconclusive':
      return { state, decision: null };
    case 'pass':
    case 'warn':
      return {
        state:
          state.phase === 'healthy' && state.consecutiveBreaches === 0 ? state : { phase: 'healthy', consecutiveBreaches: 0, sinceMs: at },
        decision: null,
      };
    case 'fail': {
      const breaches = state.consecutiveBreaches + 1;
      const needed = failsOnNoDataAlone(verdict)
        ? Math.max(policy.consecutiveBreaches, policy.consecutiveNoData ?? NO_DATA_BREACHES)
        : policy.consecutiveBreaches;
      if (breaches < needed) {
        return {
          state: { phase: 'breaching', consecutiveBreaches: breaches, sinceMs: state.phase === 'breaching' ? state.sinceMs : at },
          decision: null,
        };
      }
      const decision: RollbackDecision = {
        state: 'rolled_back',
        trigger: 'automatic',
        reason: `${breaches === 1 ? 'a failing evaluation' : `${breaches} consecutive failing evaluations`}: ${verdict.reason}`,
        checks: verdict.checks,
        baseline: verdict.baseline,
        canary: verdict.canary,
        consecutiveBreaches: breaches,
        atMs: at,
        at: new Date(at).toISOString(),
        by: pod,
      };
      return { state: { phase: 'rolled_back', consecutiveBreaches: breaches, sinceMs: at }, decision };
    }
  }
}
