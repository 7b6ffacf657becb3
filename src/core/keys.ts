/**
 * Redis key names. Every key of one service carries the `{service}` hash tag, so a Redis Cluster keeps them on one
 * shard and the Lua scripts that touch several of them stay legal. The flag key is the router's and is configured
 * as-is (give it the same hash tag when running on a Cluster).
 *
 *   <prefix>:{<service>}:slot:<version>:<slotIndex>   hash, field = pod, value = slot payload (see slot-payload.ts)
 *   <prefix>:{<service>}:lease                        string "<fencingToken>:<holder>", PX = lease TTL
 *   <prefix>:{<service>}:fence                        integer, INCR on every new lease (the fencing token)
 *   <prefix>:{<service>}:decision                     string, JSON decision record (the latch)
 *   <prefix>:{<service>}:dry-run                      string, JSON would-be decision in advisory mode (its latch)
 *   <prefix>:{<service>}:reset                        string, JSON of the last reset {atMs, actor, reason}
 *   <prefix>:{<service>}:rollout                      string, JSON rollout state (status, stage, weight, evidence; src/core/rollout.ts)
 *   <prefix>:{<service>}:audit                        stream of rollback / reset / rollout_* entries (capped)
 *   <prefix>:{<service>}:events                       pub/sub channel, one JSON message per rollback, reset or rollout transition
 *   <prefix>:{<service>}:verdict                      string, JSON of the lease holder's latest verdict and state, PX = a few
 *                                                     slots (src/integrations/verdict-store.ts): what every pod answers
 *   <prefix>:{<service>}:revision                     string, the checksum of the rollout revision Flagger last announced
 */
export interface ServiceKeys {
  slot(version: string, slotIndex: number): string;
  readonly lease: string;
  readonly fence: string;
  readonly decision: string;
  readonly dryRun: string;
  readonly reset: string;
  readonly rollout: string;
  readonly audit: string;
  readonly events: string;
  readonly verdict: string;
  readonly revision: string;
}

/** Key names for `service` under `prefix` (config: redis.keyPrefix, service). */
export function serviceKeys(prefix: string, service: string): ServiceKeys {
  const base = `${prefix}:{${service}}`;
  return {
    slot: (version, slotIndex) => `${base}:slot:${version}:${slotIndex}`,
    lease: `${base}:lease`,
    fence: `${base}:fence`,
    decision: `${base}:decision`,
    dryRun: `${base}:dry-run`,
    reset: `${base}:reset`,
    rollout: `${base}:rollout`,
    audit: `${base}:audit`,
    events: `${base}:events`,
    verdict: `${base}:verdict`,
    revision: `${base}:revision`,
  };
}
