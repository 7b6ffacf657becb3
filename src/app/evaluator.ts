/**
 * The evaluator: holds (or waits for) the Redis lease; while it holds it, each evaluation reads the fleet window,
 * judges, steps the controller and writes a rollback decision through the fenced flag store. A decision that could not
 * be written (Redis away) stays pending and is retried on every evaluation until Redis has it; the latch in Redis is
 * read on every evaluation, so a restarted or newly elected evaluator keeps a rollback and sees a reset.
 *
 * Transitions (src/core/transitions.ts) go to `notify` from here, so only the lease holder announces them: a rollback
 * when it is written (or, written by someone else, when the latch is read), a reset when it is applied or read, and the
 * verdict transitions of each evaluation. The first latch read of a tenure learns what is there and announces nothing:
 * the writer, or the previous holder, announced it.
 *
 * Anyone who can write to Redis can write the decision key, so a latch is trusted only as far as it goes: a record
 * that does not validate (flag store: decision-record.ts) latches nothing and is reported (`latch: 'corrupt'`); a valid
 * record latches, and is reported as foreign (`latchForeign`) when its configHash is not this config's; when a foreign
 * record vanishes without a reset it is not written back (no pod of this config decided it), only a decision of this
 * config is.
 *
 * After each evaluation the holder publishes its verdict and state to `verdicts` (fenced, with a TTL of a few slots),
 * so that every sidecar answers the integrations (src/integrations) with the fleet's judgement.
 */
import type { Logger } from '../config/logger.ts';
import { initialState, latchedState, step, type ControllerState, type RollbackDecision } from '../core/controller.ts';
import { EMPTY_DETECTOR, type DetectorState } from '../core/detector.ts';
import { evaluateWindow, unreadableVerdict, type JudgePolicy } from '../core/judge.ts';
import type { FlagStore, Lease, ResetRecord, WindowSource } from '../core/ports.ts';
import { slotIndexAt } from '../core/slot-recorder.ts';
import { sameDecision, verdictTransitions, type GateEvent } from '../core/transitions.ts';
import type { Outcome, Verdict } from '../core/verdict.ts';
import { printable } from '../core/text.ts';
import type { VerdictSink } from '../integrations/verdict-store.ts';
import type { SlotCount } from '../core/rollout.ts';
import { observeWeight, weightSteadySince, type WeightSeen } from '../core/weight.ts';

/** One evaluation this lease holder judged from a window it read: what a rollout needs to step (src/rollout/driver.ts). */
export interface HeldEvaluation {
  readonly verdict: Verdict;
  readonly fencingToken: number;
  /** The window's slots with their canary requests, oldest first. */
  readonly slots: readonly SlotCount[];
  /** Now, ms since the epoch. */
  readonly nowMs: number;
}

export interface EvaluatorOptions {
  readonly holderId: string;
  readonly pod: string;
  readonly slotMs: number;
  /** Slots per window (the slots a new lease holder replays into the sequential statistics). */
  readonly slots: number;
  readonly leaseTtlMs: number;
  readonly policy: JudgePolicy;
  readonly consecutiveBreaches: number;
  /** Failing evaluations in a row from no-data rules alone that roll back (default 3, ControllerPolicy.consecutiveNoData). */
  readonly consecutiveNoData?: number;
  /** Recorded in every decision this evaluator writes (RollbackDecision.configHash). */
  readonly configHash?: string;
  /** Advisory mode: the flag store records would-be rollbacks under the dry-run key; only the log lines differ here. */
  readonly advisory?: boolean;
}

/** What one evaluation produced, for logs, /status and the demo's live line. */
export interface EvaluationEvent {
  readonly verdict: Verdict | null;
  /** Set when the evaluation could not judge (Redis unreachable). */
  readonly error: string | null;
  readonly state: ControllerState;
  readonly decisionWritten: RollbackDecision | null;
}

/** What the evaluator knows, as /status and the metrics show it: a copy, read-only. */
export interface EvaluatorStatus {
  /** Whether this sidecar holds the lease now (renewed within its TTL). */
  readonly holding: boolean;
  /** The lease holder's id as last seen (this sidecar's while it holds it), or null. */
  readonly holder: string | null;
  /** The fencing token while holding the lease, else 0. */
  readonly fencingToken: number;
  readonly state: ControllerState;
  /** The decision record found in (or written to) Redis, `corrupt` when it does not validate (it latches nothing), null when none. */
  readonly latch: RollbackDecision | 'corrupt' | null;
  /** Whether the latched record was written with another config hash than this evaluator's (or none): not re-applied if it vanishes. */
  readonly latchForeign: boolean;
  /** A decision made but not yet in Redis, retried on every evaluation. */
  readonly pending: RollbackDecision | null;
  readonly latest: Verdict | null;
  /** The sequential statistics (policy.statistics.method sequential): restarted on a new lease and on a reset. */
  readonly detector: DetectorState;
  /** The Redis error of a lease renewal, an evaluation or a rollback write that is still failing; null once that operation succeeds again. */
  readonly lastError: string | null;
  /** The last error seen, with when (ms since the epoch), kept after it cleared; null if none ever. */
  readonly lastErrorSeen: { readonly message: string; readonly atMs: number } | null;
  /** Verdicts by outcome (evaluations that could not read Redis and held are in `redisHolds`, not here). */
  readonly evaluations: Readonly<Record<Outcome, number>>;
  /** Evaluations that could not read the window and held (policy.noData.redisUnreachable hold): no verdict. */
  readonly redisHolds: number;
  /** Rollback decisions this sidecar wrote. */
  readonly rollbacksWritten: number;
  /** Evaluations with at least one check at warn (or a traffic share that contradicts the flag). */
  readonly warnings: number;
  /** Redis errors of the lease, the evaluations and the rollback writes. */
  readonly redisErrors: number;
}

/** What an evaluator talks to: the Redis ports (or in-memory ones in tests), time, logs and its listeners. */
export interface EvaluatorPorts {
  readonly lease: Lease;
  readonly flags: FlagStore;
  /** The fleet's windows (FleetReader on Redis). */
  readonly source: WindowSource;
  /** Wall clock, ms since the epoch: slot boundaries, lease validity and decision times come from it. */
  readonly clock: () => number;
  readonly logger: Logger;
  /** Takes each transition this lease holder makes; must return at once and never throw (a Notifier). Default: none. */
  readonly notify?: (event: GateEvent) => void;
  /** Where each evaluation's verdict is published for the other sidecars. Default: not published. */
  readonly verdicts?: VerdictSink | null;
  /**
   * Runs after each evaluation judged from a window read while holding the lease, before the next one starts (the
   * rollout driver); must never reject. Default: nothing.
   */
  readonly afterHeld?: (held: HeldEvaluation) => Promise<unknown>;
}

export class Evaluator {
  private readonly options: EvaluatorOptions;
  private readonly lease: Lease;
  private readonly flags: FlagStore;
  private readonly source: WindowSource;
  private readonly clock: () => number;
  private readonly logger: Logger;
  private readonly notify: (event: GateEvent) => void;
  private readonly verdicts: VerdictSink | null;
  private readonly afterHeld: (held: HeldEvaluation) => Promise<unknown>;
  private token = 0;
  /** The tenure (fencing token) of the last latch read: a read in a new tenure learns, the next ones announce. */
  private syncedToken = 0;
  /** Whether a warning is under way (announced as started, not yet as ended). */
  private warning = false;
  private leaseValidUntilMs = 0;
  private evaluating = false;
  private state: ControllerState;
  private latch: RollbackDecision | 'corrupt' | null = null;
  private pending: RollbackDecision | null = null;
  private latest: Verdict | null = null;
  private detector: DetectorState = EMPTY_DETECTOR;
  private lastError: string | null = null;
  private lastErrorSeen: { readonly message: string; readonly atMs: number } | null = null;
  private redisHolds = 0;
  private holder: string | null = null;
  private readonly evaluations: Record<Outcome, number> = { pass: 0, warn: 0, inconclusive: 0, fail: 0 };
  private rollbacksWritten = 0;
  private warnings = 0;
  private redisErrors = 0;
  /** The flag as last read, and the newest slot already closed when it was first read so (the sample-ratio test waits for a window under one weight). */
  private flagSeen: WeightSeen | null = null;

  /**
   * @param options what to judge and how (config-derived, frozen)
   * @param ports the evaluator's collaborators, {@link EvaluatorPorts}
   */
  constructor(options: EvaluatorOptions, ports: EvaluatorPorts) {
    this.options = options;
    this.lease = ports.lease;
    this.flags = ports.flags;
    this.source = ports.source;
    this.clock = ports.clock;
    this.logger = ports.logger;
    this.notify = ports.notify ?? (() => undefined);
    this.verdicts = ports.verdicts ?? null;
    this.afterHeld = ports.afterHeld ?? (async () => undefined);
    this.state = initialState(ports.clock());
  }

  /** Records a failing operation's error (also kept in lastErrorSeen with its time). */
  private failed(message: string): void {
    this.lastError = message;
    this.lastErrorSeen = { message, atMs: this.clock() };
  }

  /** Clears lastError when the operation it came from (its prefix, e.g. `lease:`) succeeded again. */
  private cleared(prefix: string): void {
    if (this.lastError?.startsWith(prefix)) this.lastError = null;
  }

  /** A copy of what the evaluator knows now. */
  status(): EvaluatorStatus {
    const holding = this.holding();
    return {
      holding,
      holder: this.holder,
      fencingToken: holding ? this.token : 0,
      state: this.state,
      latch: this.latch,
      latchForeign: this.latch !== null && this.latch !== 'corrupt' && !this.writtenByThisConfig(this.latch),
      pending: this.pending,
      latest: this.latest,
      detector: this.detector,
      lastError: this.lastError,
      lastErrorSeen: this.lastErrorSeen,
      evaluations: { ...this.evaluations },
      redisHolds: this.redisHolds,
      rollbacksWritten: this.rollbacksWritten,
      warnings: this.warnings,
      redisErrors: this.redisErrors,
    };
  }

  private holding(): boolean {
    return this.token > 0 && this.clock() < this.leaseValidUntilMs;
  }

  /** Acquires or renews the lease. Never throws. */
  async renewLease(): Promise<void> {
    const startedMs = this.clock();
    try {
      const token = await this.lease.acquire(this.options.holderId, this.options.leaseTtlMs);
      this.cleared('lease:');
      if (token > 0 && this.token !== token) {
        this.logger.info({ fencingToken: token }, 'evaluator lease acquired');
        // Statistics from an earlier tenure missed the slots judged meanwhile: start again from the window.
        this.detector = EMPTY_DETECTOR;
        this.warning = false;
      }
      if (token === 0 && this.token > 0) this.logger.info('evaluator lease lost');
      this.token = token;
      // Count the lease from when the request left: the server's TTL started no earlier.
      this.leaseValidUntilMs = token > 0 ? startedMs + this.options.leaseTtlMs : 0;
      this.holder = token > 0 ? this.options.holderId : await this.lease.holder();
      if (token === 0 && this.pending !== null && this.holder !== null) {
        // Another sidecar holds the lease (it won it while this one could not reach Redis): it judges the same fleet
        // data and decides itself, as in the fenced case. Keeping the decision would write it whenever this sidecar
        // next wins the lease, however stale by then.
        this.logger.warn(
          { decision: this.pending.reason, holder: this.holder },
          'pending rollback handed over: another sidecar holds the lease and decides',
        );
        this.pending = null;
      }
    } catch (err) {
      this.redisErrors++;
      this.failed(`lease: ${(err as Error).message}`);
    }
  }

  /** Releases the lease if held (on shutdown). Never throws. */
  async releaseLease(): Promise<void> {
    if (this.token === 0) return;
    try {
      await this.lease.release(this.options.holderId);
    } catch (err) {
      this.redisErrors++;
      this.logger.warn({ err: (err as Error).message }, 'lease release failed; it expires by itself');
    }
    this.token = 0;
    this.leaseValidUntilMs = 0;
  }

  /**
   * One evaluation of the window that ended at the last slot boundary. Does nothing unless this sidecar holds the
   * lease, and nothing while the previous evaluation is still running. Never throws.
   */
  async evaluate(): Promise<EvaluationEvent | null> {
    if (!this.holding() || this.evaluating) return null;
    this.evaluating = true;
    try {
      return await this.evaluateHeld();
    } finally {
      this.evaluating = false;
    }
  }

  private async evaluateHeld(): Promise<EvaluationEvent> {
    const lastSlot = slotIndexAt(this.clock(), this.options.slotMs) - 1;
    const atMs = (lastSlot + 1) * this.options.slotMs;
    let verdict: Verdict;
    let slotCounts: SlotCount[] | null = null;
    try {
      await this.syncLatch();
      const [read, flagPercent] = await Promise.all([this.source.read(lastSlot), this.flags.flagPercent()]);
      const slots = { firstSlot: lastSlot - this.options.slots + 1, lastSlot, slotMs: this.options.slotMs, slotsOf: read.slotCounts };
      slotCounts = [];
      for (let slot = slots.firstSlot; slot <= lastSlot; slot++)
        slotCounts.push({ slot, startMs: slot * this.options.slotMs, canaryRequests: read.slotCounts(slot).canary?.requests ?? 0 });
      this.flagSeen = observeWeight(this.flagSeen, flagPercent, lastSlot);
      const flagSteady = weightSteadySince(this.flagSeen, slots.firstSlot);
      const evaluated = evaluateWindow(this.options.policy, this.detector, read.baseline, read.canary, slots, flagPercent, flagSteady);
      verdict = evaluated.verdict;
      this.detector = evaluated.detector;
      this.cleared('evaluation:');
    } catch (err) {
      this.redisErrors++;
      this.failed(`evaluation: ${(err as Error).message}`);
      this.logger.warn(
        { err: (err as Error).message, action: this.options.policy.noData.redisUnreachable },
        'evaluation: redis unreachable',
      );
      if (this.options.policy.noData.redisUnreachable === 'hold') {
        this.redisHolds++;
        return { verdict: null, error: this.lastError, state: this.state, decisionWritten: null };
      }
      // policy.noData.redisUnreachable rollback or pass: the outage is judged like any verdict; a decision waits in
      // `pending` until Redis is back.
      verdict = unreadableVerdict(this.options.policy, atMs, (err as Error).message);
    }
    this.latest = verdict;
    this.evaluations[verdict.outcome]++;
    // A sample-ratio mismatch is a warning too: the router does not split as the flag says.
    const mismatch = verdict.checks.find((c) => c.check === 'traffic_share');
    if (mismatch !== undefined) this.logger.warn({ reason: mismatch.reason }, 'traffic share does not match the flag');
    if (mismatch !== undefined || verdict.checks.some((c) => c.outcome === 'warn')) this.warnings++;
    const next = step(
      { consecutiveBreaches: this.options.consecutiveBreaches, consecutiveNoData: this.options.consecutiveNoData },
      this.state,
      verdict,
      this.options.pod,
    );
    const transitions = verdictTransitions(this.state, this.warning, verdict, next.state, this.advisory);
    this.state = next.state;
    this.warning = transitions.warning;
    for (const event of transitions.events) this.emit(event);
    if (next.decision) {
      this.queueDecision(this.options.configHash === undefined ? next.decision : { ...next.decision, configHash: this.options.configHash });
      this.logger.warn({ decision: next.decision.reason }, 'rollback decided');
    } else if (verdict.outcome !== 'pass') {
      this.logger.info({ verdict: verdict.outcome, reason: verdict.reason, breaches: this.state.consecutiveBreaches }, 'evaluation');
    }
    const written = await this.writePending();
    await this.publishVerdict(verdict);
    if (slotCounts !== null && this.holding())
      await this.afterHeld({ verdict, fencingToken: this.token, slots: slotCounts, nowMs: this.clock() });
    return { verdict, error: null, state: this.state, decisionWritten: written };
  }

  /** Publishes the verdict with the state and latch it left, while holding the lease. Never throws. */
  private async publishVerdict(verdict: Verdict): Promise<void> {
    if (this.verdicts === null || !this.holding()) return;
    try {
      const held = { holder: this.options.holderId, fencingToken: this.token, state: this.state, latch: this.latch, verdict };
      await this.verdicts.publish(held);
      this.cleared('verdict publish:');
    } catch (err) {
      this.redisErrors++;
      this.failed(`verdict publish: ${(err as Error).message}`);
    }
  }

  /** Reads the latch: a decision in Redis latches this controller; its disappearance (a reset) unlatches it. */
  private async syncLatch(): Promise<void> {
    const latch = await this.flags.latch();
    const announce = this.syncedToken === this.token;
    this.syncedToken = this.token;
    const previous = this.latch;
    if (latch === 'corrupt' && previous !== 'corrupt') {
      this.logger.error('the decision key holds no valid decision record (written by another client): not latching on it');
    }
    if (latch !== null && latch !== 'corrupt' && this.state.phase !== 'rolled_back') {
      this.state = latchedState(latch.atMs);
      const foreign = !this.writtenByThisConfig(latch);
      this.logger.warn({ foreign, by: printable(latch.by).slice(0, 300) }, 'rollback latched in redis; keeping it');
    } else if (latch === null && this.latch !== null && this.state.phase === 'rolled_back' && this.pending === null) {
      const decidedMs = this.latch === 'corrupt' ? 0 : this.latch.atMs;
      const reset = await this.flags.lastReset();
      if (reset !== null && reset.atMs >= decidedMs) {
        this.state = initialState(this.clock());
        this.detector = EMPTY_DETECTOR;
        this.logger.warn('latch cleared in redis (reset); judging again');
        if (announce) this.emitReset(reset, this.latch);
      } else if (this.latch !== 'corrupt' && this.writtenByThisConfig(this.latch)) {
        // The latch vanished without a reset: Redis lost its data. Fail safe: write the decision again.
        this.pending = this.latch;
        this.logger.warn('latch vanished from redis without a reset; writing the decision again');
        return;
      } else if (this.latch !== 'corrupt') {
        // No pod of this config decided it (a forged or foreign record): writing it back would set the flag on its word.
        this.state = initialState(this.clock());
        this.detector = EMPTY_DETECTOR;
        this.logger.error(
          { configHash: this.latch.configHash ?? null },
          'a decision record this config did not write vanished without a reset: not writing it back; judging again',
        );
      }
    }
    if (
      announce &&
      latch !== null &&
      latch !== 'corrupt' &&
      (previous === null || previous === 'corrupt' || !sameDecision(previous, latch))
    ) {
      // Written by someone else (a manual rollback, another writer); after a reset if it replaced another decision.
      if (previous !== null && previous !== 'corrupt') {
        const reset = await this.flags.lastReset();
        if (reset !== null && reset.atMs >= previous.atMs) this.emitReset(reset, previous);
      }
      this.emit({ kind: 'rolled_back', atMs: latch.atMs, advisory: this.advisory, decision: latch });
    }
    this.latch = latch;
  }

  /** Whether a decision carries this evaluator's config hash (both absent counts: tests without a hash). */
  private writtenByThisConfig(decision: RollbackDecision): boolean {
    return decision.configHash === this.options.configHash;
  }

  private get advisory(): boolean {
    return this.options.advisory === true;
  }

  /** Hands a transition to `notify`, only while holding the lease. Never throws. */
  private emit(event: GateEvent): void {
    if (!this.holding()) return;
    try {
      this.notify(event);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, kind: event.kind }, 'notification not queued');
    }
  }

  private emitReset(reset: ResetRecord, cleared: RollbackDecision | 'corrupt' | null): void {
    this.emit({
      kind: 'reset',
      atMs: reset.atMs,
      advisory: this.advisory,
      actor: reset.actor,
      reason: reset.reason,
      decision: cleared === 'corrupt' ? null : cleared,
    });
  }

  /**
   * Queues a rollback decision for {@link writePending}: written with the fencing token now, or at a later evaluation
   * while Redis is away; dropped if a reset comes after it or another sidecar takes the lease first.
   */
  queueDecision(decision: RollbackDecision): void {
    this.pending = decision;
  }

  /** Writes the pending decision with the current fencing token. Returns it when written. Never throws. */
  async writePending(): Promise<RollbackDecision | null> {
    const decision = this.pending;
    if (decision === null || !this.holding()) return null;
    try {
      // An operator reset after the decision was made (while it waited for Redis) overrides it.
      const resetMs = await this.flags.lastResetMs();
      if (resetMs !== null && resetMs >= decision.atMs) {
        this.pending = null;
        this.logger.warn({ decision: decision.reason, resetMs }, 'pending rollback dropped: a reset came after it was decided');
        return null;
      }
      const outcome = await this.flags.rollback(decision, this.token);
      this.cleared('rollback write:');
      if (outcome === 'written') {
        this.pending = null;
        this.latch = decision;
        this.rollbacksWritten++;
        this.logger.warn(
          { decision },
          this.options.advisory ? 'dry-run rollback recorded (advisory): flag untouched' : 'rollback written: flag set',
        );
        this.emit({ kind: 'rolled_back', atMs: decision.atMs, advisory: this.advisory, decision });
        return decision;
      }
      if (outcome === 'already_latched') {
        this.pending = null;
        this.logger.warn('rollback already latched by another writer; nothing written');
        if (this.latch === 'corrupt') {
          this.logger.error(
            'the decision key holds a record that looks like a decision but does not validate: the rollback was not written',
          );
        }
      } else {
        // Fenced: another sidecar holds the lease now and judges the same fleet data itself.
        this.pending = null;
        this.token = 0;
        this.leaseValidUntilMs = 0;
        this.logger.warn('rollback refused: lease lost (fenced); the new holder decides');
      }
    } catch (err) {
      this.redisErrors++;
      this.failed(`rollback write: ${(err as Error).message}`);
      this.logger.warn({ err: (err as Error).message }, 'rollback write failed; will retry');
    }
    return null;
  }

  /** Applies a manual rollback that was written to Redis (and announces it, when holding the lease). */
  latchManual(decision: RollbackDecision): void {
    this.state = latchedState(decision.atMs);
    this.latch = decision;
    this.pending = null;
    this.emit({ kind: 'rolled_back', atMs: decision.atMs, advisory: this.advisory, decision });
  }

  /**
   * Applies a reset that was written to Redis; when holding the lease and something was latched, announces it.
   * @param reset the reset as written (its time, actor and reason); the lease holder otherwise learns of it from Redis
   */
  clearAfterReset(reset?: ResetRecord): void {
    if (reset !== undefined && (this.latch !== null || this.state.phase === 'rolled_back')) this.emitReset(reset, this.latch);
    this.state = initialState(this.clock());
    this.detector = EMPTY_DETECTOR;
    this.latch = null;
    this.pending = null;
  }
}
