/**
 * The transitions the gate announces (to the notification sinks of src/notify), as data: one event per transition, a
 * union discriminated by `kind`, and the pure rule that reads the verdict transitions off one controller step.
 *
 *   rolled_back       a rollback decision is in Redis (automatic, written by the lease holder; or manual)
 *   reset             a person cleared the latch (POST /reset, `canary-gate reset`)
 *   warning_started   a conclusive verdict turned `warn`
 *   warning_ended     the next conclusive verdict after a warning was `pass`
 *   breaching         a failing evaluation that has not rolled back yet (healthy -> breaching)
 *   recovered         breaching -> healthy: the streak ended before it rolled back
 *
 *   rollout_started, rollout_promoted, rollout_paused, rollout_resumed, rollout_completed, rollout_aborted,
 *   rollout_rolled_back   a rollout transition (src/core/rollout.ts), with the rollout and the transition's record
 *
 * The sinks switch on `kind` exhaustively, so the compiler names every place a new kind must be handled, and a
 * receiver of the JSON webhook can pass over kinds it does not know.
 * Time is a parameter here (`atMs`, ms since the epoch): nothing reads a clock.
 */
import type { ControllerState, RollbackDecision } from './controller.ts';
import { ROLLOUT_TRANSITIONS, type RolloutRecord, type RolloutState, type RolloutTransitionKind } from './rollout.ts';
import type { Verdict } from './verdict.ts';

interface EventBase {
  /** When it happened, ms since the epoch: the decision's time, the reset's, or the end of the judged window. */
  readonly atMs: number;
  /** policy.advisory: decisions are would-be ones (the dry-run key); the flag is never touched. */
  readonly advisory: boolean;
}

export interface RolledBackEvent extends EventBase {
  readonly kind: 'rolled_back';
  /** The decision record, as Redis holds it (`trigger` tells automatic from manual). */
  readonly decision: RollbackDecision;
}

export interface ResetEvent extends EventBase {
  readonly kind: 'reset';
  /** Who reset and why, as the reset record says; null when it could not be read. */
  readonly actor: string | null;
  readonly reason: string | null;
  /** The decision the reset cleared (what a PagerDuty resolve refers to); null when not known. */
  readonly decision: RollbackDecision | null;
}

export interface VerdictEvent<K extends string> extends EventBase {
  readonly kind: K;
  /** The verdict that made the transition, with every check and its evidence. */
  readonly verdict: Verdict;
}

export interface BreachingEvent extends VerdictEvent<'breaching'> {
  /** Failing evaluations in a row so far. */
  readonly consecutiveBreaches: number;
}

/** A rollout transition: what the audit stream records, with the rollout after it. */
export interface RolloutEvent extends EventBase {
  readonly kind: `rollout_${RolloutTransitionKind}`;
  /** The rollout after the transition: id (the notifications' dedup key carries it), status, stage, weight. */
  readonly rollout: Pick<RolloutState, 'id' | 'status' | 'stage' | 'weight' | 'revision'>;
  /** Who, why, from and to which weight, and the evidence at the weight that was left. */
  readonly record: RolloutRecord;
}

export type GateEvent =
  | RolloutEvent
  | RolledBackEvent
  | ResetEvent
  | VerdictEvent<'warning_started'>
  | VerdictEvent<'warning_ended'>
  | BreachingEvent
  | VerdictEvent<'recovered'>;

export type GateEventKind = GateEvent['kind'];

/** Every kind, in the order of the list above (docs and tests iterate it). */
export const GATE_EVENT_KINDS: readonly GateEventKind[] = [
  'rolled_back',
  'reset',
  'warning_started',
  'warning_ended',
  'breaching',
  'recovered',
  ...ROLLOUT_TRANSITIONS.map((kind) => `rollout_${kind}` as const),
];

export interface VerdictTransitions {
  readonly events: readonly GateEvent[];
  /** Whether a warning is under way after this verdict (the caller keeps it for the next one). */
  readonly warning: boolean;
}

/**
 * The transitions one controller step made, besides a rollback (announced when it is written, not when decided).
 *
 * - `inconclusive` changes nothing: a warning or a breach neither starts nor ends on missing data;
 * - `warn` starts a warning unless one is under way; `pass` ends it; `fail` ends it quietly (the breach says more);
 * - healthy -> breaching announces the breach, breaching -> healthy the recovery;
 * - while latched (rolled_back before the step) nothing is announced and no warning is under way.
 *
 * @param before the controller state before the step; `after` the state it returned
 * @param warning whether a warning was under way before this verdict
 * @param advisory copied into each event
 */
export function verdictTransitions(
  before: ControllerState,
  warning: boolean,
  verdict: Verdict,
  after: ControllerState,
  advisory: boolean,
): VerdictTransitions {
  if (before.phase === 'rolled_back') return { events: [], warning: false };
  if (verdict.outcome === 'inconclusive') return { events: [], warning };
  const events: GateEvent[] = [];
  const at = { atMs: verdict.atMs, advisory, verdict };
  if (before.phase !== 'breaching' && after.phase === 'breaching')
    events.push({ kind: 'breaching', ...at, consecutiveBreaches: after.consecutiveBreaches });
  if (before.phase === 'breaching' && after.phase === 'healthy') events.push({ kind: 'recovered', ...at });
  if (verdict.outcome === 'warn' && !warning) events.push({ kind: 'warning_started', ...at });
  if (verdict.outcome === 'pass' && warning) events.push({ kind: 'warning_ended', ...at });
  return { events, warning: verdict.outcome === 'warn' };
}

/** Whether two decision records are the same decision (same time, trigger and decider). */
export function sameDecision(a: RollbackDecision, b: RollbackDecision): boolean {
  return a.atMs === b.atMs && a.trigger === b.trigger && a.by === b.by;
}
