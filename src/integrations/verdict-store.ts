/**
 * The lease holder's latest verdict in Redis, so that every sidecar's admin port answers with the fleet's judgement,
 * not only the holder's memory (README, "Argo Rollouts" and "Flagger").
 *
 *   <prefix>:{<service>}:verdict   string, JSON {@link PublishedVerdict}, PX = {@link verdictTtlMs}
 *
 * The write is one Lua script (EVALSHA via `defineCommand`) fenced like the rollback: it writes only while the
 * caller's fencing token is the lease's, so a paused old holder cannot overwrite a newer holder's verdict. The TTL is a
 * few slots: when no holder evaluates (lease lost, evaluation disabled, Redis away from the holder) the record expires
 * and readers judge on demand instead of repeating an old verdict.
 */
import type { ControllerState, RollbackDecision } from '../core/controller.ts';
import type { ServiceKeys } from '../core/keys.ts';
import type { Verdict } from '../core/verdict.ts';
import type { Redis } from '../fleet/redis-client.ts';

/** What the lease holder publishes after each evaluation: the same verdict JSON as `/status`, with its state. */
export interface PublishedVerdict {
  readonly service: string;
  /** The versions the holder judged (config versions.baseline and versions.canary). */
  readonly baseline: string;
  readonly canary: string;
  /** The holder's id (`<pod>/<random>`) and fencing token at the write. */
  readonly holder: string;
  readonly fencingToken: number;
  /** When the record was written, ms since the epoch (the verdict's own `atMs` is when its window ended). */
  readonly writtenAtMs: number;
  /** policy.advisory: the latch is the dry-run latch and the flag is never written. */
  readonly advisory: boolean;
  /** The controller's state after this verdict. */
  readonly state: ControllerState;
  /** The latched decision (or dry-run decision in advisory mode), `corrupt` when unreadable, null when none. */
  readonly latch: RollbackDecision | 'corrupt' | null;
  readonly verdict: Verdict;
}

/** What the evaluator hands over after an evaluation it made as lease holder. */
export interface HeldVerdict {
  readonly holder: string;
  readonly fencingToken: number;
  readonly state: ControllerState;
  readonly latch: RollbackDecision | 'corrupt' | null;
  readonly verdict: Verdict;
}

/** Where the evaluator publishes its verdicts; `publish` rejects when Redis refuses (the evaluator counts it). */
export interface VerdictSink {
  /** @returns false when the fencing token is no longer the lease's (nothing written) */
  publish(held: HeldVerdict): Promise<boolean>;
}

/**
 * How long a published verdict lives: three slots, or the lease TTL if longer, plus the evaluation delay. A holder
 * that keeps evaluating rewrites it every slot; one that stopped is forgotten within that time.
 * @param slotMs window.slot, ms; @param leaseTtlMs evaluation.leaseTtl, ms; @param delayMs evaluation.delay, ms
 */
export function verdictTtlMs(slotMs: number, leaseTtlMs: number, delayMs: number): number {
  return Math.round(Math.max(3 * slotMs, leaseTtlMs) + delayMs);
}

// KEYS: lease, verdict. ARGV: token, json, ttlMs
const PUBLISH = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local sep = string.find(cur, ':', 1, true)
if not sep or tonumber(string.sub(cur, 1, sep - 1)) ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
`;

type VerdictCommands = { cgVerdictPublish(lease: string, verdict: string, token: number, json: string, ttlMs: number): Promise<number> };

/** Parses a stored record; null when it is not one (foreign, truncated, edited by hand). */
export function parsePublishedVerdict(text: string): PublishedVerdict | null {
  try {
    const r = JSON.parse(text) as Partial<PublishedVerdict>;
    const ok =
      typeof r === 'object' &&
      r !== null &&
      typeof r.baseline === 'string' &&
      typeof r.canary === 'string' &&
      typeof r.writtenAtMs === 'number' &&
      typeof r.state?.phase === 'string' &&
      typeof r.verdict?.outcome === 'string' &&
      Array.isArray(r.verdict.checks);
    return ok ? (r as PublishedVerdict) : null;
  } catch {
    return null;
  }
}

export class RedisVerdictStore implements VerdictSink {
  private readonly redis: Redis & VerdictCommands;
  private readonly keys: ServiceKeys;
  private readonly context: { service: string; baseline: string; canary: string; advisory: boolean };
  private readonly ttlMs: number;
  private readonly clock: () => number;

  /**
   * @param context the service, the judged versions and policy.advisory, copied into every record
   * @param ttlMs the record's PX, ms ({@link verdictTtlMs})
   * @param clock wall clock, ms since the epoch (writtenAtMs)
   */
  constructor(
    redis: Redis,
    keys: ServiceKeys,
    context: { service: string; baseline: string; canary: string; advisory: boolean },
    ttlMs: number,
    clock: () => number,
  ) {
    if (!('cgVerdictPublish' in redis)) redis.defineCommand('cgVerdictPublish', { numberOfKeys: 2, lua: PUBLISH });
    this.redis = redis as Redis & VerdictCommands;
    this.keys = keys;
    this.context = context;
    this.ttlMs = ttlMs;
    this.clock = clock;
  }

  async publish(held: HeldVerdict): Promise<boolean> {
    const record: PublishedVerdict = { ...this.context, ...held, writtenAtMs: this.clock() };
    // JSON has no NaN: figures that are not computable (no samples) travel as null, as /status shows them.
    const json = JSON.stringify(record, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v));
    const written = await this.redis.cgVerdictPublish(this.keys.lease, this.keys.verdict, held.fencingToken, json, this.ttlMs);
    return Number(written) === 1;
  }

  /** The latest published verdict, or null when none is fresh (expired, never written) or it does not parse. Rejects when Redis refuses. */
  async read(): Promise<PublishedVerdict | null> {
    const text = await this.redis.get(this.keys.verdict);
    return text === null ? null : parsePublishedVerdict(text);
  }

  /** Forgets the published verdict (a new revision: the old one must not be answered for it). Rejects when Redis refuses. */
  async clear(): Promise<void> {
    await this.redis.del(this.keys.verdict);
  }
}
