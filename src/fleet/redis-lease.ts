/**
 * The evaluator lease on Redis: one holder per service, with a fencing token that grows with every new holder.
 * Acquire and renew are one Lua script (EVALSHA via ioredis `defineCommand`): when the key is absent it is set
 * (the SET NX PX of the design, done atomically with the INCR of the fencing counter); when the caller already
 * holds it, its TTL is renewed; otherwise 0 is returned.
 *
 * Another client may have written the key: a value without a TTL, or one that is not a lease at all (another shape,
 * another type, oversized), would otherwise keep every pod from the lease forever. The script gives such a key the
 * lease period as its TTL (a malformed one at most that), so it is taken over one lease period later.
 *
 * Fencing token: max(INCR of the counter, the Redis server's clock in ms). The clock part closes the gap of a failover
 * that loses the last INCR (asynchronous replication): the promoted replica's counter would hand the same token to a
 * second holder, and a paused first holder could then pass the fence once; its clock, at least a failover later, is
 * past that token (assuming the servers' clocks agree to within the failover time). A counter that holds no integer
 * restarts from the clock too. Tokens are therefore about 1.7e12, exact in a double.
 */
import type { ServiceKeys } from '../core/keys.ts';
import type { Lease } from '../core/ports.ts';
import type { Redis } from './redis-client.ts';

// KEYS: lease, fence. ARGV: holder, ttlMs.
const ACQUIRE = `
local ttl = tonumber(ARGV[2])
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then
  local token = redis.pcall('INCR', KEYS[2])
  -- The token is at least the server's clock in ms. A fence that holds no integer (another client wrote it) restarts
  -- from there, past any token issued; and after a failover that lost the last INCR (the old primary issued a token
  -- its replica never saw), the new primary's counter would issue that token again, to a second holder: the clock,
  -- seconds later, is past it.
  local now = redis.call('TIME')
  local clockMs = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if type(token) == 'table' or token < clockMs then
    token = clockMs
    redis.call('DEL', KEYS[2])
    redis.call('SET', KEYS[2], token)
  end
  redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ttl)
  return token
end
local wellFormed = false
if kind == 'string' and redis.call('STRLEN', KEYS[1]) <= 1024 then
  local cur = redis.call('GET', KEYS[1])
  local sep = string.find(cur, ':', 1, true)
  local token = sep and tonumber(string.sub(cur, 1, sep - 1))
  if token and token >= 1 and token == math.floor(token) and sep < #cur then
    wellFormed = true
    if string.sub(cur, sep + 1) == ARGV[1] then
      redis.call('PEXPIRE', KEYS[1], ttl)
      return token
    end
  end
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 or (not wellFormed and left > ttl) then redis.call('PEXPIRE', KEYS[1], ttl) end
return 0
`;

const RELEASE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, ':', 1, true)
  if sep and string.sub(cur, sep + 1) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
end
return 0
`;

type LeaseCommands = {
  cgLeaseAcquire(lease: string, fence: string, holder: string, ttlMs: number): Promise<number>;
  cgLeaseRelease(lease: string, holder: string): Promise<number>;
};

/** Parses a lease value `<token>:<holder>`; null when absent or malformed. */
export function parseLeaseValue(value: string | null): { token: number; holder: string } | null {
  if (value === null) return null;
  const sep = value.indexOf(':');
  const token = Number(value.slice(0, sep));
  if (sep < 1 || !Number.isSafeInteger(token)) return null;
  return { token, holder: value.slice(sep + 1) };
}

export class RedisLease implements Lease {
  private readonly redis: Redis & LeaseCommands;
  private readonly keys: ServiceKeys;

  constructor(redis: Redis, keys: ServiceKeys) {
    if (!('cgLeaseAcquire' in redis)) {
      redis.defineCommand('cgLeaseAcquire', { numberOfKeys: 2, lua: ACQUIRE });
      redis.defineCommand('cgLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
    }
    this.redis = redis as Redis & LeaseCommands;
    this.keys = keys;
  }

  /** @returns the fencing token (> 0) when `holder` holds the lease for `ttlMs` ms from now, else 0 */
  async acquire(holder: string, ttlMs: number): Promise<number> {
    return Number(await this.redis.cgLeaseAcquire(this.keys.lease, this.keys.fence, holder, Math.round(ttlMs)));
  }

  async release(holder: string): Promise<void> {
    await this.redis.cgLeaseRelease(this.keys.lease, holder);
  }

  /** The holder id (from the first KiB of the lease value), or null when absent, malformed or not a string. */
  async holder(): Promise<string | null> {
    let value: string;
    try {
      value = await this.redis.getrange(this.keys.lease, 0, 1023);
    } catch (err) {
      if ((err as Error).message.startsWith('WRONGTYPE')) return null;
      throw err;
    }
    return parseLeaseValue(value === '' ? null : value)?.holder ?? null;
  }
}
