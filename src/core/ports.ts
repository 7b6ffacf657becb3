/**
 * The narrow ports core needs from the outside world, one per role (flagger's habit: two or three methods each).
 * Redis implements them in src/fleet and src/flag; the evaluator's unit tests use the in-memory ones of test/helpers.
 */
import type { RollbackDecision } from './controller.ts';
import type { SealedSlot } from './slot-recorder.ts';
import type { WindowRead } from './window.ts';

/** Shares sealed slots with the fleet and reads them back. */
export interface SlotStore {
  /** Writes this pod's sealed slot of `version`. Rejects when Redis is unreachable (the caller buffers and retries). */
  publish(version: string, pod: string, slot: SealedSlot): Promise<void>;
}

/** The fleet's rolling windows of baseline and canary, as the evaluator reads them once per evaluation. */
export interface WindowSource {
  /**
   * Reads the window of slots [lastSlotIndex - slots + 1, lastSlotIndex] of both versions. What it returns is valid
   * until the next read. Rejects when the store is unreachable (the evaluation is then judged as Redis unreachable).
   */
  read(lastSlotIndex: number): Promise<WindowRead>;
}

/** Holds the evaluator lease. A positive fencing token means this caller holds it. */
export interface Lease {
  /**
   * Acquires or renews the lease for `ttlMs` ms. Resolves to the fencing token, or 0 when another holder has it.
   * @param holderId this evaluator's holder id, `<pod name>/<random>` (unique per process, so a restarted pod is a new holder)
   */
  acquire(holderId: string, ttlMs: number): Promise<number>;
  /** Releases the lease if `holderId` holds it. */
  release(holderId: string): Promise<void>;
  /** The current holder id, or null. */
  holder(): Promise<string | null>;
}

/** What a reset records: when (ms since the epoch), who and why. */
export interface ResetRecord {
  readonly atMs: number;
  readonly actor: string;
  readonly reason: string;
}

/** Result of a fenced rollback write. */
export type WriteOutcome = 'written' | 'already_latched' | 'fenced';

/** Writes and clears the rollback flag and its decision record. */
export interface FlagStore {
  /**
   * Atomically, only if `fencingToken` is still the lease's: sets the flag, stores the decision record (the latch),
   * appends to the audit stream and publishes an event. Pass token 0 for a manual (unfenced) rollback.
   */
  rollback(decision: RollbackDecision, fencingToken: number): Promise<WriteOutcome>;
  /** The latched decision, or null. A record that does not parse is reported as `corrupt`. */
  latch(): Promise<RollbackDecision | 'corrupt' | null>;
  /** Clears the latch, optionally sets the flag to `flagValue`, and audits who did it and why. */
  reset(actor: string, reason: string, flagValue: string | null, atMs: number): Promise<void>;
  /** When the latch was last reset (ms since the epoch), or null if never: tells a reset from a Redis that lost its data. */
  lastResetMs(): Promise<number | null>;
  /** The last reset's record (when, who, why), or null if never or unreadable: what a reset notification says. */
  lastReset(): Promise<ResetRecord | null>;
  /** The flag's value read as the canary's traffic percentage 0..100, or null when unset or not a number in range. */
  flagPercent(): Promise<number | null>;
}
