/**
 * The rollout state on Redis: one JSON string under `<prefix>:{<service>}:rollout`, changed only by Lua scripts
 * (EVALSHA via ioredis `defineCommand`), as the rollback is (src/flag/redis-flag-store.ts).
 *
 * A transition is one script that, atomically: checks the caller's fencing token against the lease (token 0: an
 * operator, unfenced), checks the state's revision (compare-and-set: the caller saw the state it changes), refuses
 * when the rollback latch is set and the transition may not pass it (start, promote, resume), then sets the flag,
 * stores the state, appends a `rollout_<kind>` entry to the audit stream and publishes it on the events channel (the
 * router re-reads the flag on every event). A progress update (the evidence counted at an evaluation) is a second
 * script that stores the state only, fenced and compared the same way.
 */
import type { Cluster, Redis as IORedis } from 'ioredis';
import type { ServiceKeys } from '../core/keys.ts';
import type { RolloutRecord, RolloutState } from '../core/rollout.ts';

/** A single server's client (standalone, sentinel) or a Cluster's, as src/fleet/redis-client.ts makes them. */
type Redis = IORedis | Cluster;

// The start of both scripts: KEYS[1] is the lease, ARGV[1] the writer's fencing token (0: an operator, not fenced);
// a token that is not the current lease's returns 'fenced' before anything is read or written.
const FENCED_BY_LEASE = `
local token = tonumber(ARGV[1])
if token > 0 then
  local cur = redis.call('GET', KEYS[1])
  if not cur then return 'fenced' end
  local sep = string.find(cur, ':', 1, true)
  if not sep or tonumber(string.sub(cur, 1, sep - 1)) ~= token then return 'fenced' end
end
`;

// KEYS: lease, rollout, decision (latch), audit, flag.
// ARGV: token, expected revision, state JSON, flag value ('' = leave), channel, auditMaxLen, event, actor, reason,
// refuse if latched (1|0), record JSON
const TRANSITION = `${FENCED_BY_LEASE}local stored = redis.call('GET', KEYS[2])
local revision = 0
if stored then
  local ok, state = pcall(cjson.decode, stored)
  if ok and type(state) == 'table' and tonumber(state.revision) then revision = tonumber(state.revision) end
end
if revision ~= tonumber(ARGV[2]) then return 'stale' end
if ARGV[10] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return 'latched' end
if ARGV[4] ~= '' then redis.call('SET', KEYS[5], ARGV[4]) end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'event', ARGV[7], 'actor', ARGV[8], 'reason', ARGV[9], 'flag', ARGV[4], 'rollout', ARGV[11])
redis.call('PUBLISH', ARGV[5], cjson.encode({event = ARGV[7], actor = ARGV[8], reason = ARGV[9], flag = ARGV[4] ~= '' and ARGV[4] or cjson.null}))
return 'written'
`;

// KEYS: lease, rollout. ARGV: token, expected revision, state JSON
const PROGRESS = `${FENCED_BY_LEASE}local stored = redis.call('GET', KEYS[2])
if not stored then return 'stale' end
local ok, state = pcall(cjson.decode, stored)
if not ok or type(state) ~= 'table' or tonumber(state.revision) ~= tonumber(ARGV[2]) then return 'stale' end
redis.call('SET', KEYS[2], ARGV[3])
return 'written'
`;

type RolloutCommands = {
  cgRolloutTransition(
    lease: string,
    rollout: string,
    decision: string,
    audit: string,
    flag: string,
    ...argv: Array<string | number>
  ): Promise<string>;
  cgRolloutProgress(lease: string, rollout: string, ...argv: Array<string | number>): Promise<string>;
};

/**
 * Result of a rollout write: `written`; `fenced` (the token is not the lease's); `stale` (the state changed since it
 * was read: read again); `latched` (the rollback latch is set: nothing written).
 */
export type RolloutWriteOutcome = 'written' | 'fenced' | 'stale' | 'latched';

/** What one read sees: the rollout (null: none, `corrupt`: not a rollout), whether the latch is set, and the flag. */
export interface RolloutSnapshot {
  readonly state: RolloutState | null;
  readonly corrupt: boolean;
  readonly latched: boolean;
  /** The flag's raw value, or null when unset. */
  readonly flag: string | null;
}

export interface RolloutStoreOptions {
  /** The flag key routers read (config flag.key). */
  readonly flagKey: string;
  /** Approximate cap of the audit stream (config flag.auditMaxLen). */
  readonly auditMaxLen: number;
  /** The latch key: the decision key, or the dry-run key in advisory mode. */
  readonly latchKey: string;
}

/** Parses a stored rollout; null when it is not one. */
export function parseRollout(text: string): RolloutState | null {
  try {
    const s = JSON.parse(text) as Partial<RolloutState>;
    if (s && typeof s.status === 'string' && typeof s.revision === 'number' && typeof s.stage === 'number' && typeof s.weight === 'number')
      return s as RolloutState;
  } catch {
    // not JSON
  }
  return null;
}

export class RedisRolloutStore {
  private readonly redis: Redis & RolloutCommands;
  private readonly keys: ServiceKeys;
  private readonly options: RolloutStoreOptions;

  constructor(redis: Redis, keys: ServiceKeys, options: RolloutStoreOptions) {
    if (!('cgRolloutTransition' in redis)) {
      redis.defineCommand('cgRolloutTransition', { numberOfKeys: 5, lua: TRANSITION });
      redis.defineCommand('cgRolloutProgress', { numberOfKeys: 2, lua: PROGRESS });
    }
    this.redis = redis as Redis & RolloutCommands;
    this.keys = keys;
    this.options = options;
  }

  /** Reads the rollout, the latch and the flag in one round trip. Rejects when Redis is unreachable. */
  async read(): Promise<RolloutSnapshot> {
    const [text, latch, flag] = await this.redis.mget(this.keys.rollout, this.options.latchKey, this.options.flagKey);
    const state = text === null || text === undefined ? null : parseRollout(text);
    return {
      state,
      corrupt: text !== null && text !== undefined && state === null,
      latched: latch !== null && latch !== undefined,
      flag: flag ?? null,
    };
  }

  /**
   * Writes one transition atomically (module doc).
   * @param expectedRevision the revision of the state it was computed from (0 when there was none)
   * @param fencingToken the lease holder's token, or 0 for an operator (unfenced)
   * @param flag the weight to write, or null to leave the flag
   */
  async transition(
    state: RolloutState,
    record: RolloutRecord,
    expectedRevision: number,
    fencingToken: number,
    flag: number | null,
    refuseIfLatched: boolean,
  ): Promise<RolloutWriteOutcome> {
    const k = this.keys;
    return (await this.redis.cgRolloutTransition(
      k.lease,
      k.rollout,
      this.options.latchKey,
      k.audit,
      this.options.flagKey,
      fencingToken,
      expectedRevision,
      JSON.stringify(state),
      flag === null ? '' : String(flag),
      k.events,
      this.options.auditMaxLen,
      `rollout_${record.kind}`,
      record.actor,
      record.reason,
      refuseIfLatched ? '1' : '0',
      JSON.stringify(record),
    )) as RolloutWriteOutcome;
  }

  /** Stores the evidence counted at an evaluation (no audit entry, no event); fenced and compared as a transition. */
  async progress(state: RolloutState, fencingToken: number): Promise<RolloutWriteOutcome> {
    return (await this.redis.cgRolloutProgress(
      this.keys.lease,
      this.keys.rollout,
      fencingToken,
      state.revision,
      JSON.stringify(state),
    )) as RolloutWriteOutcome;
  }

  /** The rollout audit entries, oldest first (the `rollout_*` entries of the audit stream), at most `count`. */
  async history(count = 100): Promise<Array<{ id: string; record: RolloutRecord }>> {
    const entries = await this.redis.xrevrange(this.keys.audit, '+', '-', 'COUNT', count * 4);
    const out: Array<{ id: string; record: RolloutRecord }> = [];
    for (const [id, fields] of entries) {
      const at = fields.indexOf('rollout');
      if (at === -1 || at % 2 !== 0) continue;
      try {
        out.push({ id, record: JSON.parse(fields[at + 1] ?? '') as RolloutRecord });
      } catch {
        // a foreign entry: skipped
      }
      if (out.length >= count) break;
    }
    return out.reverse();
  }
}
