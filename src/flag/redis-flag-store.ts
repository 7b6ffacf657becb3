/**
 * FlagStore on Redis. A rollback is one Lua script (EVALSHA via `defineCommand`), atomic and fenced: it refuses to
 * write unless the caller's fencing token is the lease's current one (token 0: a manual rollback, unfenced), and it
 * writes nothing when a decision is already latched (so a retried write lands exactly once). In one step it sets the
 * flag, stores the decision record (the latch), appends to the capped audit stream and publishes an event.
 *
 * Advisory mode (policy.advisory): the same script stores the would-be decision under the dry-run key instead of the
 * decision key, records a `dry_run_rollback` event, and never touches the flag; reset and the latch read the dry-run
 * key. A team measures false rollbacks on real traffic this way before arming the gate.
 *
 * Every key read here may have been written by another client: the decision and reset keys are read through
 * {@link BOUNDED_GET}, which returns nothing longer than {@link MAX_DECISION_BYTES} and no other type than a string (the
 * flag with a plain GET, which the router's ACL allows; another type there reads as unset); a decision record is validated in
 * full (decision-record.ts) before the evaluator latches on it; a latch key that holds no decision (garbage, another
 * type) does not stop a real rollback from being written over it.
 */
import type { RollbackDecision } from '../core/controller.ts';
import type { ServiceKeys } from '../core/keys.ts';
import type { FlagStore, ResetRecord, WriteOutcome } from '../core/ports.ts';
import type { Cluster, Redis as IORedis } from 'ioredis';
import type { Config } from '../config/schema.ts';
import { MAX_DECISION_BYTES, parseDecision, storedDecision } from './decision-record.ts';
import { cleanText } from '../core/text.ts';

export { parseDecision } from './decision-record.ts';

/**
 * GET that refuses what it should not carry. KEYS: the key; ARGV: the longest value returned, bytes. Returns nil when
 * absent, the value when a string within the limit, else `['too_large', length]` or `['wrong_type', type]`.
 */
const BOUNDED_GET = `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then return false end
if kind ~= 'string' then return {'wrong_type', kind} end
local size = redis.call('STRLEN', KEYS[1])
if size > tonumber(ARGV[1]) then return {'too_large', size} end
return redis.call('GET', KEYS[1])
`;

/** What BOUNDED_GET read: the value, null when absent, or why it refused. */
type Bounded = string | null | { refused: string };

// KEYS: lease, decision (or dry-run), audit, flag. ARGV: token, flagValue, decisionJson, channel, auditMaxLen, actor,
// reason, setFlag (1|0), event name, max decision bytes.
// A decision key that holds no decision (not a string, too long, not JSON, or without the fields every decision has)
// is garbage from another client: it is replaced, so that it cannot block a real rollback. So is an audit key of
// another type than a stream.
const ROLLBACK = `
local token = tonumber(ARGV[1])
if token > 0 then
  if redis.call('TYPE', KEYS[1]).ok ~= 'string' then return 'fenced' end
  local cur = redis.call('GET', KEYS[1])
  local sep = string.find(cur, ':', 1, true)
  if not sep or tonumber(string.sub(cur, 1, sep - 1)) ~= token then return 'fenced' end
end
local kind = redis.call('TYPE', KEYS[2]).ok
if kind == 'string' and redis.call('STRLEN', KEYS[2]) <= tonumber(ARGV[10]) then
  local ok, d = pcall(cjson.decode, redis.call('GET', KEYS[2]))
  if ok and type(d) == 'table' and d.state == 'rolled_back' and (d.trigger == 'automatic' or d.trigger == 'manual')
    and type(d.atMs) == 'number' and type(d.reason) == 'string' and type(d.by) == 'string' and type(d.at) == 'string'
    and type(d.checks) == 'table' then
    return 'already_latched'
  end
end
if kind ~= 'none' then redis.call('DEL', KEYS[2]) end
local auditKind = redis.call('TYPE', KEYS[3]).ok
if auditKind ~= 'none' and auditKind ~= 'stream' then redis.call('DEL', KEYS[3]) end
if ARGV[8] == '1' then redis.call('SET', KEYS[4], ARGV[2]) end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'event', ARGV[9], 'actor', ARGV[6], 'reason', ARGV[7], 'decision', ARGV[3])
redis.call('PUBLISH', ARGV[4], cjson.encode({event = ARGV[9], actor = ARGV[6], reason = ARGV[7], flag = ARGV[8] == '1' and ARGV[2] or cjson.null}))
return 'written'
`;

// KEYS: decision, audit, flag, reset. ARGV: setFlag (1|0), flagValue, channel, auditMaxLen, actor, reason, resetJson
const RESET = `
local had = redis.call('DEL', KEYS[1])
local auditKind = redis.call('TYPE', KEYS[2]).ok
if auditKind ~= 'none' and auditKind ~= 'stream' then redis.call('DEL', KEYS[2]) end
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
  cgBoundedGet(key: string, maxBytes: number): Promise<string | null | [string, string | number]>;
};

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
      redis.defineCommand('cgBoundedGet', { numberOfKeys: 1, lua: BOUNDED_GET });
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
      storedDecision(decision),
      k.events,
      o.auditMaxLen,
      decision.by,
      decision.reason,
      o.advisory ? '0' : '1',
      o.advisory ? 'dry_run_rollback' : 'rollback',
      MAX_DECISION_BYTES,
    );
    return outcome as WriteOutcome;
  }

  /**
   * Reads a key that another client may have written, without fetching more than {@link MAX_DECISION_BYTES}.
   * @throws the Redis error (connection, timeout)
   */
  private async boundedGet(key: string): Promise<Bounded> {
    const reply = await this.redis.cgBoundedGet(key, MAX_DECISION_BYTES);
    if (reply === null || typeof reply === 'string') return reply;
    return { refused: `${reply[0]} ${String(reply[1])}` };
  }

  /** @returns the decision, `corrupt` when the key holds anything else (too long, another type, not a decision), or null */
  async latch(): Promise<RollbackDecision | 'corrupt' | null> {
    const text = await this.boundedGet(this.latchKey);
    if (text === null) return null;
    return (typeof text === 'string' ? parseDecision(text) : null) ?? 'corrupt';
  }

  /**
   * The flag read with a plain GET (the router's ACL user has +get and no scripts): a value of another type than a
   * string reads as null, never as a failed evaluation.
   */
  private async plainFlag(): Promise<string | null> {
    try {
      return await this.redis.get(this.options.flagKey);
    } catch (err) {
      if ((err as Error).message.startsWith('WRONGTYPE')) return null;
      throw err;
    }
  }

  async flagPercent(): Promise<number | null> {
    const text = await this.plainFlag();
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
    const text = await this.boundedGet(this.keys.reset);
    if (typeof text !== 'string') return null;
    try {
      const r = JSON.parse(text) as Partial<Record<keyof ResetRecord, unknown>>;
      if (typeof r.atMs !== 'number') return null;
      // Cleaned again on the way out: another client may have written the key, and notifications carry these texts.
      const clean = (v: unknown, max: number): string => (typeof v === 'string' ? cleanText(v, max) : '');
      return { atMs: r.atMs, actor: clean(r.actor, 200), reason: clean(r.reason, 500) };
    } catch {
      return null;
    }
  }

  /** The flag's current value, or null when unset or not a string. */
  async flag(): Promise<string | null> {
    return this.plainFlag();
  }
}
