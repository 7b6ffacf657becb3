/**
 * The flag store in memory, as RedisFlagStore keeps it in Redis (src/flag/redis-flag-store.ts): a rollback is fenced
 * by the lease's current token (0: manual, unfenced) and lands once (`already_latched` afterwards); a reset clears
 * the latch and records when; a Redis that loses its data is `wipe()`.
 */
import type { RollbackDecision } from '../../src/core/controller.ts';
import type { FlagStore, ResetRecord, WriteOutcome } from '../../src/core/ports.ts';
import type { MemoryLease } from './memory-lease.ts';

export class MemoryFlagStore implements FlagStore {
  /** false: every call rejects, as with Redis unreachable. */
  reachable = true;
  /** The flag routers read (config flag.key), or null when unset. */
  flag: string | null;
  /** The decision record (the latch): set it to `corrupt` for a record edited by hand. */
  record: RollbackDecision | 'corrupt' | null = null;
  /** Every decision written, in order. */
  readonly written: RollbackDecision[] = [];
  private resetRecord: ResetRecord | null = null;
  private readonly lease: MemoryLease;
  private readonly rollbackValue: string;

  /**
   * @param lease the lease whose token fences a rollback
   * @param flag the flag's value to start with (e.g. '10': the canary gets 10 %)
   */
  constructor(lease: MemoryLease, flag: string | null = null, rollbackValue = '0') {
    this.lease = lease;
    this.flag = flag;
    this.rollbackValue = rollbackValue;
  }

  async rollback(decision: RollbackDecision, fencingToken: number): Promise<WriteOutcome> {
    this.ensureReachable();
    if (fencingToken > 0 && fencingToken !== this.lease.tokenNow()) return 'fenced';
    if (this.record !== null) return 'already_latched';
    this.flag = this.rollbackValue;
    this.record = decision;
    this.written.push(decision);
    return 'written';
  }

  async latch(): Promise<RollbackDecision | 'corrupt' | null> {
    this.ensureReachable();
    return this.record;
  }

  async reset(actor: string, reason: string, flagValue: string | null, atMs: number): Promise<void> {
    this.ensureReachable();
    this.record = null;
    this.resetRecord = { atMs, actor, reason };
    if (flagValue !== null) this.flag = flagValue;
  }

  async lastResetMs(): Promise<number | null> {
    this.ensureReachable();
    return this.resetRecord?.atMs ?? null;
  }

  async lastReset(): Promise<ResetRecord | null> {
    this.ensureReachable();
    return this.resetRecord;
  }

  async flagPercent(): Promise<number | null> {
    this.ensureReachable();
    if (this.flag === null || this.flag.trim() === '') return null;
    const value = Number(this.flag);
    return Number.isFinite(value) && value >= 0 && value <= 100 ? value : null;
  }

  /** Loses every key, as a Redis that restarts empty: the latch, the reset record and the flag. */
  wipe(): void {
    this.record = null;
    this.resetRecord = null;
    this.flag = null;
  }

  private ensureReachable(): void {
    if (!this.reachable) throw new Error('flag store: connection refused (memory store unreachable)');
  }
}
