/**
 * The upgrade check of the per-service flag key (README, "Upgrade notes"). Before 0.2 every service's flag was
 * `feature:v2_traffic_percentage`; the default is now `feature:{<service>}:v2_traffic_percentage`. A router that still
 * reads the old key never sees a rollback written to the new one, and the gate reads no traffic percentage from an
 * unset key; so a sidecar on the default key that finds the old key set and its own unset says so at start-up.
 */
import type { Cluster, Redis as IORedis } from 'ioredis';
import type { Logger } from '../config/logger.ts';

/** The flag key every service shared before 0.2. */
export const LEGACY_FLAG_KEY = 'feature:v2_traffic_percentage';

/**
 * Logs one warning when `LEGACY_FLAG_KEY` holds a value and `flagKey` holds none.
 * @param flagKey the flag key in use (config flag.key, resolved)
 * @returns true when it warned; false otherwise, also when Redis cannot be read (never throws)
 */
export async function warnOnLegacyFlag(redis: IORedis | Cluster, flagKey: string, logger: Logger): Promise<boolean> {
  if (flagKey === LEGACY_FLAG_KEY) return false;
  try {
    // Two single-key reads: on a Cluster the two keys live in different slots.
    const [legacy, own] = await Promise.all([redis.get(LEGACY_FLAG_KEY), redis.get(flagKey)]);
    if (legacy === null || own !== null) return false;
    logger.warn(
      { flagKey, legacyFlagKey: LEGACY_FLAG_KEY, legacyValue: legacy.slice(0, 32) },
      `the flag key is per service since 0.2: ${LEGACY_FLAG_KEY} is set and ${flagKey} is not; a router that still reads the old key will not see a rollback (set flag.key to the old key, or move the router and the value to the new one; README, "Upgrade notes")`,
    );
    return true;
  } catch {
    return false;
  }
}
