/**
 * One judgement of a (baseline, canary) pair, as the integration endpoints answer it on every pod:
 *
 * - the pair the gate is configured for (versions.baseline, versions.canary): the lease holder's latest verdict as
 *   published in Redis ({@link PublishedVerdict}), with its controller state; a latched rollback answers `fail`;
 * - any other pair (Argo Rollouts names its stable and canary pod-template hashes), or the configured pair when no
 *   fresh verdict is published: judged on demand from the fleet's slots in Redis, with the same judge and policy. The
 *   sequential statistics start empty and replay the window's slots, so every pod asked about the same window gives
 *   the same verdict. State is null: for another pair no controller runs and the caller owns the decision; for the
 *   configured pair with evaluation.enabled the lease holder still owns it (`controlled`), its record is just late;
 * - Redis unreachable: the verdict policy.noData.redisUnreachable gives (hold: inconclusive), never an exception.
 */
import type { Phase, RollbackDecision } from '../core/controller.ts';
import { EMPTY_DETECTOR } from '../core/detector.ts';
import { evaluateWindow, unreadableVerdict, type JudgePolicy } from '../core/judge.ts';
import type { ServiceKeys } from '../core/keys.ts';
import { slotIndexAt } from '../core/slot-recorder.ts';
import type { CheckResult, Outcome, Verdict, VersionFigures } from '../core/verdict.ts';
import { FleetReader } from '../fleet/fleet-reader.ts';
import type { Redis } from '../fleet/redis-client.ts';
import type { PublishedVerdict } from './verdict-store.ts';

/** Two version names: the one judged as the reference and the one judged against it. */
export interface VersionPair {
  readonly baseline: string;
  readonly canary: string;
}

/** Where a judgement came from. */
export type JudgementSource = 'lease_holder' | 'on_demand' | 'redis_unreachable';

export interface Judgement {
  /** The verdict: the judge's outcome, or `fail` while a rollback is latched. */
  readonly verdict: Outcome;
  /** The judge's own outcome and reason for the window, latch or not. */
  readonly judged: Outcome;
  readonly judgedReason: string;
  /** The lease holder's controller phase; null when judged on demand or Redis is unreachable. */
  readonly state: Phase | null;
  /**
   * Whether a lease holder decides this pair's rollback (the configured pair, evaluation.enabled): then only its latch
   * is a decision, and an on-demand fail (no fresh record yet) is not. False for pairs only the caller judges.
   */
  readonly controlled: boolean;
  readonly source: JudgementSource;
  /** One line: the reasons of the checks that set the verdict, or the latched decision's. */
  readonly reason: string;
  /** The pair judged. */
  readonly pair: VersionPair;
  /** When the judged window ended, ms since the epoch. */
  readonly atMs: number;
  readonly baseline: VersionFigures;
  readonly canary: VersionFigures;
  readonly checks: readonly CheckResult[];
  /** The lease holder's id when source is lease_holder, else null. */
  readonly holder: string | null;
  /** The latched decision (the dry-run one in advisory mode) when the holder's controller is rolled back, else null. */
  readonly latch: RollbackDecision | null;
  /** policy.advisory of the gate. */
  readonly advisory: boolean;
}

export interface JudgementOptions {
  /** config versions: the pair the lease holder judges and publishes. */
  readonly versions: VersionPair;
  readonly policy: JudgePolicy;
  readonly advisory: boolean;
  /** window.slot and window.slots. */
  readonly slotMs: number;
  readonly slots: number;
  /** evaluation.delay, ms: an on-demand judgement reads the window the holder would (pods publish just after a boundary). */
  readonly delayMs: number;
  /** evaluation.enabled: a lease holder judges and publishes the configured pair. */
  readonly evaluates: boolean;
}

export interface JudgementSources {
  /** The published verdict; rejects when Redis refuses. */
  readPublished(): Promise<PublishedVerdict | null>;
  /** Judges a pair from the fleet's slots; rejects when Redis refuses. */
  judgeOnDemand(pair: VersionPair, lastSlot: number): Promise<Verdict>;
}

/** On-demand judgements one sidecar runs at once; more wait their turn (each decodes a whole window on the event loop). */
export const ON_DEMAND_CONCURRENCY = 2;

/**
 * Judges the fleet's slots of `pair` in Redis (see the module): a fresh reader and empty statistics per window.
 * Requests for the same pair and window while one is being judged share its verdict, and at most
 * {@link ON_DEMAND_CONCURRENCY} windows are decoded at once, so that callers on the admin port cannot crowd out the proxy.
 */
export function onDemandJudge(redis: Redis, keys: ServiceKeys, options: JudgementOptions): JudgementSources['judgeOnDemand'] {
  const inFlight = new Map<string, Promise<Verdict>>();
  const waiting: Array<() => void> = [];
  let running = 0;
  const judgeWindow = async (pair: VersionPair, lastSlot: number): Promise<Verdict> => {
    if (running >= ON_DEMAND_CONCURRENCY) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    const reader = new FleetReader(redis, keys, pair, options.slotMs, options.slots);
    try {
      const read = await reader.read(lastSlot);
      const slots = { firstSlot: lastSlot - options.slots + 1, lastSlot, slotMs: options.slotMs, slotsOf: read.slotCounts };
      // No flag is read: Argo Rollouts and Flagger own the weights, so no traffic-share rule applies.
      return evaluateWindow(options.policy, EMPTY_DETECTOR, read.baseline, read.canary, slots, null).verdict;
    } finally {
      reader.destroy();
      running--;
      waiting.shift()?.();
    }
  };
  return (pair, lastSlot) => {
    const key = `${pair.baseline}\n${pair.canary}\n${lastSlot}`;
    const shared = inFlight.get(key);
    if (shared !== undefined) return shared;
    const verdict = judgeWindow(pair, lastSlot).finally(() => inFlight.delete(key));
    inFlight.set(key, verdict);
    return verdict;
  };
}

const latchReason = (latch: RollbackDecision, advisory: boolean): string =>
  `rollback latched${advisory ? ' (advisory: dry run)' : ''} by ${latch.by} at ${latch.at}: ${latch.reason}`;

function fromVerdict(verdict: Verdict, pair: VersionPair, source: JudgementSource, advisory: boolean, controlled: boolean): Judgement {
  return {
    controlled,
    verdict: verdict.outcome,
    judged: verdict.outcome,
    judgedReason: verdict.reason,
    state: null,
    source,
    reason: verdict.reason,
    pair,
    atMs: verdict.atMs,
    baseline: { ...verdict.baseline, version: pair.baseline },
    canary: { ...verdict.canary, version: pair.canary },
    checks: verdict.checks,
    holder: null,
    latch: null,
    advisory,
  };
}

function fromRecord(record: PublishedVerdict, pair: VersionPair): Judgement {
  const rolledBack = record.state.phase === 'rolled_back';
  const latch = rolledBack && record.latch !== null && record.latch !== 'corrupt' ? record.latch : null;
  const reason = !rolledBack
    ? record.verdict.reason
    : latch !== null
      ? latchReason(latch, record.advisory)
      : 'rollback latched (decision record unreadable)';
  return {
    ...fromVerdict(record.verdict, pair, 'lease_holder', record.advisory, true),
    verdict: rolledBack ? 'fail' : record.verdict.outcome,
    state: record.state.phase,
    reason,
    holder: record.holder,
    latch,
  };
}

/**
 * Judges `pair` (see the module). Never rejects.
 * @param nowMs wall clock, ms since the epoch: which window an on-demand judgement reads
 */
export async function judgePair(
  options: JudgementOptions,
  sources: JudgementSources,
  pair: VersionPair,
  nowMs: number,
): Promise<Judgement> {
  const lastSlot = slotIndexAt(nowMs - options.delayMs, options.slotMs) - 1;
  const configured = pair.baseline === options.versions.baseline && pair.canary === options.versions.canary;
  const controlled = configured && options.evaluates;
  try {
    if (configured) {
      const record = await sources.readPublished();
      if (record !== null && record.baseline === pair.baseline && record.canary === pair.canary) return fromRecord(record, pair);
    }
    return fromVerdict(await sources.judgeOnDemand(pair, lastSlot), pair, 'on_demand', options.advisory, controlled);
  } catch (err) {
    const verdict = unreadableVerdict(options.policy, (lastSlot + 1) * options.slotMs, (err as Error).message);
    return fromVerdict(verdict, pair, 'redis_unreachable', options.advisory, controlled);
  }
}

/** A version name as slot keys carry it: letters, digits, dot, dash, underscore; at most 253 characters (a label value is at most 63). */
const VERSION_NAME = /^[A-Za-z0-9._-]{1,253}$/;

/** Checks a version name from a request. @returns null when usable, else the reason (answered 400) */
export function versionNameProblem(field: string, value: string): string | null {
  return VERSION_NAME.test(value)
    ? null
    : `${field} must be a version name (letters, digits, . _ -), got ${JSON.stringify(value.slice(0, 80))}`;
}

/** The answer's checks as the integrations show them: evidence left out (it is in /status and the decision record). */
export function checkRows(checks: readonly CheckResult[]): Array<{
  name: string;
  outcome: Outcome;
  observed: number;
  threshold: number;
  unit: CheckResult['unit'];
  reason: string;
}> {
  return checks.map((c) => ({
    name: c.check,
    outcome: c.outcome,
    observed: c.observed,
    threshold: c.threshold,
    unit: c.unit,
    reason: c.reason,
  }));
}
