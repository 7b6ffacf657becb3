/**
 * The evaluator lease on Redis: one holder per service, with a fencing token that grows with every new holder.
 * Acquire and renew are one Lua script (EVALSHA via ioredis `defineCommand`): when the key is absent it is set
 * (the SET NX PX of the design, done atomically with the INCR of the fencing counter); when the caller already
 * holds it, its TTL is renewed; otherwise 0 is returned.
 */
import type { ServiceKeys } from '../core/keys.ts';
import type { Lease } from '../core/ports.ts';
import type { Redis } from './redis-client.ts';

const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, ':', 1, true)
  if sep and string.sub(cur, sep + 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.sub(cur, 1, sep - 1))
  end
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return token
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

  async holder(): Promise<string | null> {
    return parseLeaseValue(await this.redis.get(this.keys.lease))?.holder ?? null;
  }
}
