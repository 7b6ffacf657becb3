/**
 * FlagStore on Redis. A rollback is one Lua script (EVALSHA via `defineCommand`), atomic and fenced: it refuses to
 * write unless the caller's fencing token is the lease's current one (token 0: a manual rollback, unfenced), and it
 * writes nothing when a decision is already latched (so a retried write lands exactly once). In one step it sets the
 * flag, stores the decision record (the latch), appends to the capped audit stream and publishes an event.
 *
 * Advisory mode (policy.advisory): the same script stores the would-be decision under the dry-run key instead of the
 * decision key, records a `dry_run_rollback` event, and never touches the flag; reset and the latch read the dry-run
 * key. A team measures false rollbacks on real traffic this way before arming the gate.
 */
import type { RollbackDecision } from '../core/controller.ts';
import type { ServiceKeys } from '../core/keys.ts';
import type { FlagStore, ResetRecord, WriteOutcome } from '../core/ports.ts';
import type { Cluster, Redis as IORedis } from 'ioredis';
import type { Config } from '../config/schema.ts';

// KEYS: lease, decision (or dry-run), audit, flag. ARGV: token, flagValue, decisionJson, channel, auditMaxLen, actor,
// reason, setFlag (1|0), event name
const ROLLBACK = `
local token = tonumber(ARGV[1])
if token > 0 then
  local cur = redis.call('GET', KEYS[1])
  if not cur then return 'fenced' end
  local sep = string.find(cur, ':', 1, true)
  if not sep or tonumber(string.sub(cur, 1, sep - 1)) ~= token then return 'fenced' end
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'already_latched' end
if ARGV[8] == '1' then redis.call('SET', KEYS[4], ARGV[2]) end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[9], 'actor', ARGV[6], 'reason', ARGV[7], 'decision', ARGV[3])
redis.call('PUBLISH', ARGV[4], cjson.encode({event = ARGV[9], actor = ARGV[6], reason = ARGV[7], flag = ARGV[8] == '1' and ARGV[2] or cjson.null}))
return 'written'
`;

// KEYS: decision, audit, flag, reset. ARGV: setFlag (1|0), flagValue, channel, auditMaxLen, actor, reason, resetJson
const RESET = `
local had = redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[4], ARGV[7])
if ARGV[1] == '1' then redis.call('SET', KEYS[3], ARGV[2]) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', 'reset', 'actor', ARGV[5], 'reason', ARGV[6], 'flag', ARGV[1] == '1' and ARGV[2] or '')
redis.call('PUBLISH', ARGV[3], cjson.encode({event = 'reset', actor = ARGV[5], reason = ARGV[6]}))
return had
`;

/** A single server's client (standalone, sentinel) or a Cluster's, as src/fleet/redis-client.ts makes them. */
type Redis = IORedis | Cluster;

type FlagCommands = {
  cgRollback(lease: string, decision: string, audit: string, flag: string, ...argv: Array<string | number>): Promise<string>;
  cgReset(decision: string, audit: string, flag: string, reset: string, ...argv: Array<string | number>): Promise<number>;
};

/** Parses a stored decision record; null when it is not one (edited by hand, foreign). */
export function parseDecision(text: string): RollbackDecision | null {
  try {
    const d = JSON.parse(text) as Partial<RollbackDecision>;
    if (d && d.state === 'rolled_back' && typeof d.atMs === 'number' && typeof d.reason === 'string') return d as RollbackDecision;
  } catch {
    // fall through: not JSON
  }
  return null;
}

export interface FlagStoreOptions {
  /** The flag key routers read (config flag.key). */
  readonly flagKey: string;
  /** Value written on rollback (config flag.rollbackValue). */
  readonly rollbackValue: string;
  /** Approximate cap of the audit stream (config flag.auditMaxLen). */
  readonly auditMaxLen: number;
  /** Advisory mode (config policy.advisory): record would-be rollbacks under the dry-run key, never set the flag. */
  readonly advisory?: boolean;
}

/** The flag store's options from the config's `flag` section. */
export function flagOptionsOf(flag: Config['flag'], advisory = false): FlagStoreOptions {
  return { flagKey: flag.key, rollbackValue: flag.rollbackValue, auditMaxLen: flag.auditMaxLen, advisory };
}

export class RedisFlagStore implements FlagStore {
  private readonly redis: Redis & FlagCommands;
  private readonly keys: ServiceKeys;
  private readonly options: FlagStoreOptions;
  /** The decision key, or the dry-run key in advisory mode. */
  private readonly latchKey: string;

  constructor(redis: Redis, keys: ServiceKeys, options: FlagStoreOptions) {
    if (!('cgRollback' in redis)) {
      redis.defineCommand('cgRollback', { numberOfKeys: 4, lua: ROLLBACK });
      redis.defineCommand('cgReset', { numberOfKeys: 4, lua: RESET });
    }
    this.redis = redis as Redis & FlagCommands;
    this.keys = keys;
    this.options = options;
    this.latchKey = options.advisory ? keys.dryRun : keys.decision;
  }

  /** @returns `written`, `already_latched` (nothing changed) or `fenced` (token is not the lease's; nothing changed) */
  async rollback(decision: RollbackDecision, fencingToken: number): Promise<WriteOutcome> {
    const k = this.keys;
    const o = this.options;
    const outcome = await this.redis.cgRollback(
      k.lease,
      this.latchKey,
      k.audit,
      this.options.flagKey,
      fencingToken,
      o.rollbackValue,
      JSON.stringify(decision),
      k.events,
      o.auditMaxLen,
      decision.by,
      decision.reason,
      o.advisory ? '0' : '1',
      o.advisory ? 'dry_run_rollback' : 'rollback',
    );
    return outcome as WriteOutcome;
  }

  async latch(): Promise<RollbackDecision | 'corrupt' | null> {
    const text = await this.redis.get(this.latchKey);
    if (text === null) return null;
    return parseDecision(text) ?? 'corrupt';
  }

  async flagPercent(): Promise<number | null> {
    const text = await this.redis.get(this.options.flagKey);
    if (text === null || text.trim() === '') return null;
    const value = Number(text);
    return Number.isFinite(value) && value >= 0 && value <= 100 ? value : null;
  }

  /**
   * The decision recorded in one audit stream entry (a rollback event).
   * @param id the entry id as XRANGE prints it (`1700000000000-0`)
   * @returns the decision, `corrupt` when the entry's decision does not parse, null when there is no such rollback entry
   */
  async auditDecision(id: string): Promise<RollbackDecision | 'corrupt' | null> {
    const entries = await this.redis.xrange(this.keys.audit, id, id);
    const fields = entries[0]?.[1];
    if (fields === undefined) return null;
    const at = fields.indexOf('decision');
    if (at === -1 || at % 2 !== 0) return null;
    return parseDecision(fields[at + 1] ?? '') ?? 'corrupt';
  }

  /** @param flagValue the flag's new value (e.g. the canary's percentage), or null to leave it */
  async reset(actor: string, reason: string, flagValue: string | null, atMs: number): Promise<void> {
    const k = this.keys;
    const marker = JSON.stringify({ atMs, actor, reason });
    await this.redis.cgReset(
      this.latchKey,
      k.audit,
      this.options.flagKey,
      k.reset,
      flagValue === null ? '0' : '1',
      flagValue ?? '',
      k.events,
      this.options.auditMaxLen,
      actor,
      reason,
      marker,
    );
  }

  async lastResetMs(): Promise<number | null> {
    return (await this.lastReset())?.atMs ?? null;
  }

  async lastReset(): Promise<ResetRecord | null> {
    const text = await this.redis.get(this.keys.reset);
    if (text === null) return null;
    try {
      const r = JSON.parse(text) as Partial<Record<keyof ResetRecord, unknown>>;
      if (typeof r.atMs !== 'number') return null;
      return { atMs: r.atMs, actor: typeof r.actor === 'string' ? r.actor : '', reason: typeof r.reason === 'string' ? r.reason : '' };
    } catch {
      return null;
    }
  }

  /** The flag's current value, or null when unset. */
  async flag(): Promise<string | null> {
    return this.redis.get(this.options.flagKey);
  }
}
