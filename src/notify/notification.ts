/**
 * A notification: one transition of the gate (src/core/transitions.ts) with where it happened and a stable id, the
 * idempotency key every sink's request carries on every attempt. The id is derived from the transition itself
 * (service, kind, time, decision), so the same transition announced twice (a decision written again after Redis lost
 * it, a reset seen by the admin call and by the next latch read) has the same id and is sent once.
 */
import { createHash } from 'node:crypto';
import { explainDecision, explainVerdict } from '../core/explain.ts';
import type { RollbackDecision } from '../core/controller.ts';
import type { GateEvent, RolloutEvent } from '../core/transitions.ts';
import type { Verdict, VersionFigures } from '../core/verdict.ts';

export interface Notification {
  /** The idempotency key: 32 hex digits, the same for the same transition. */
  readonly id: string;
  /** The gated service (config service). */
  readonly service: string;
  /** The sidecar that sent it (the lease holder). */
  readonly pod: string;
  readonly event: GateEvent;
}

/** The transition's identity: what makes two announcements the same one. */
function identity(event: GateEvent): string {
  switch (event.kind) {
    case 'rolled_back':
      return `${event.decision.trigger}|${event.decision.by}`;
    case 'reset':
      return event.decision === null ? '' : String(event.decision.atMs);
    case 'rollout_started':
    case 'rollout_promoted':
    case 'rollout_paused':
    case 'rollout_resumed':
    case 'rollout_completed':
    case 'rollout_aborted':
    case 'rollout_rolled_back':
      return `${event.rollout.id}|${event.rollout.revision}`;
    default:
      return '';
  }
}

export function notificationOf(service: string, pod: string, event: GateEvent): Notification {
  const id = createHash('sha256')
    .update(`${service}\n${event.kind}\n${event.atMs}\n${identity(event)}`)
    .digest('hex')
    .slice(0, 32);
  return { id, service, pod, event };
}

/** The decision an event is about: the one written, or the one a reset cleared; null for verdict transitions. */
export function decisionOf(event: GateEvent): RollbackDecision | null {
  return event.kind === 'rolled_back' || event.kind === 'reset' ? event.decision : null;
}

/** The verdict an event is about (warning, breach, recovery); null for rollbacks and resets. */
export function verdictOf(event: GateEvent): Verdict | null {
  return 'verdict' in event ? event.verdict : null;
}

/** Whether an event is a rollout transition. */
export function isRolloutEvent(event: GateEvent): event is RolloutEvent {
  return event.kind.startsWith('rollout_');
}

/** Both versions' figures as the event knows them (the decision's or the verdict's), or null. */
export function figuresOf(event: GateEvent): { baseline: VersionFigures; canary: VersionFigures } | null {
  const from = verdictOf(event) ?? decisionOf(event);
  return from?.baseline && from.canary ? { baseline: from.baseline, canary: from.canary } : null;
}

/** The `canary-gate explain` table of the event's decision or verdict; null when it has neither. */
export function explainOf(event: GateEvent): string | null {
  const verdict = verdictOf(event);
  if (verdict !== null) return explainVerdict(verdict);
  const decision = decisionOf(event);
  return decision === null ? null : explainDecision(decision);
}

/** A short title: what happened to which service, e.g. `checkout: canary v2 rolled back`. */
export function titleOf(n: Notification): string {
  const e = n.event;
  const canary = `canary ${figuresOf(e)?.canary.version ?? ''}`.trimEnd();
  const dryRun = e.advisory ? ' (dry run)' : '';
  switch (e.kind) {
    case 'rolled_back':
      return `${n.service}: ${canary} ${e.advisory ? 'would have been rolled back' : 'rolled back'} (${e.decision.trigger})`;
    case 'reset':
      return `${n.service}: rollback reset${dryRun}`;
    case 'warning_started':
      return `${n.service}: ${canary} warning${dryRun}`;
    case 'warning_ended':
      return `${n.service}: ${canary} warning ended${dryRun}`;
    case 'breaching':
      return `${n.service}: ${canary} breaching${dryRun}`;
    case 'recovered':
      return `${n.service}: ${canary} recovered${dryRun}`;
    default:
      return rolloutTitle(n.service, e);
  }
}

/** `checkout: rollout promoted 5 % -> 25 %`. */
function rolloutTitle(service: string, e: RolloutEvent): string {
  const r = e.record;
  const words = e.kind.slice('rollout_'.length).replace('_', ' ');
  const weights = r.fromWeight === null || r.fromWeight === r.toWeight ? `at ${r.toWeight} %` : `${r.fromWeight} % -> ${r.toWeight} %`;
  return `${service}: rollout ${words} ${weights}`;
}

/** Why, in one line: the decision's or verdict's reason, or who reset and why. */
export function reasonOf(e: GateEvent): string {
  switch (e.kind) {
    case 'rolled_back':
      return e.decision.reason;
    case 'reset':
      return `reset by ${e.actor ?? 'unknown'}: ${e.reason ?? 'no reason recorded'}`;
    case 'breaching':
      return `${e.consecutiveBreaches} failing evaluation${e.consecutiveBreaches === 1 ? '' : 's'} in a row: ${e.verdict.reason}`;
    case 'warning_ended':
    case 'recovered':
      return `${e.verdict.outcome} verdict${e.verdict.reason ? `: ${e.verdict.reason}` : ''}`;
    case 'warning_started':
      return e.verdict.reason;
    default:
      return `${e.record.actor}: ${e.record.reason}`;
  }
}

/** Title and reason in one line, for people (Slack's fallback text, PagerDuty's summary). */
export function summaryOf(n: Notification): string {
  return `${titleOf(n)}: ${reasonOf(n.event)}`;
}
