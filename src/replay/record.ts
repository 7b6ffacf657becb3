/**
 * `canary-gate record`: writes a recording (src/replay/recording.ts) of a live fleet. After every slot boundary plus
 * evaluation.delay it reads the window from Redis like the evaluator does (FleetReader), appends every pod-slot seen
 * for the first time and the flag's value, and stops after the given duration. It holds no lease and writes nothing
 * to Redis, so it runs beside the sidecars.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Config } from '../config/schema.ts';
import type { Logger } from 'pino';
import { serviceKeys } from '../core/keys.ts';
import { slotIndexAt } from '../core/slot-recorder.ts';
import { FleetReader } from '../fleet/fleet-reader.ts';
import { createRedisClient, waitReady } from '../fleet/redis-client.ts';
import { flagOptionsOf, RedisFlagStore } from '../flag/redis-flag-store.ts';
import { recordingLine } from './recording.ts';

export interface RecordOptions {
  readonly out: string;
  /** How long to record, ms. */
  readonly durationMs: number;
  readonly logger: Logger;
  /** Clock, ms since the epoch (tests may pass their own). */
  readonly clock?: () => number;
}

/**
 * Records the fleet of `config.service` into `options.out` (created or truncated).
 * @returns the numbers of slot and flag lines written
 * @throws the file system's error when `out` cannot be written; Redis errors are logged and the slot is retried at
 *   the next boundary (the reader keeps what it has seen)
 */
export async function recordFleet(config: Config, options: RecordOptions): Promise<{ slots: number; flags: number }> {
  const clock = options.clock ?? Date.now;
  const slotMs = config.window.slot;
  const keys = serviceKeys(config.redis.keyPrefix, config.service);
  const redis = createRedisClient(config.redis, options.logger);
  const reader = new FleetReader(redis, keys, config.versions, slotMs, config.window.slots);
  const flags = new RedisFlagStore(redis, keys, flagOptionsOf(config.flag, config.policy.advisory));
  const file = createWriteStream(options.out);
  await once(file, 'open');
  const counts = { slots: 0, flags: 0 };
  const write = (text: string): void => void file.write(text);
  reader.tap = (version, slot, pod, payload) => {
    write(recordingLine({ kind: 'slot', version, slot, pod, payload }));
    counts.slots++;
  };
  write(
    recordingLine({
      kind: 'meta',
      service: config.service,
      baseline: config.versions.baseline,
      canary: config.versions.canary,
      slotMs,
      slots: config.window.slots,
    }),
  );
  const endMs = clock() + options.durationMs;
  try {
    await waitReady(redis, config.redis.connectTimeout + 1000).catch(() => undefined);
    for (;;) {
      const nextMs = (slotIndexAt(clock(), slotMs) + 1) * slotMs + config.evaluation.delay;
      if (nextMs > endMs) break;
      await new Promise((r) => setTimeout(r, Math.max(0, nextMs - clock())));
      const lastSlot = slotIndexAt(clock() - config.evaluation.delay, slotMs) - 1;
      try {
        const [, percent] = await Promise.all([reader.read(lastSlot), flags.flagPercent()]);
        write(recordingLine({ kind: 'flag', slot: lastSlot, percent }));
        counts.flags++;
      } catch (err) {
        options.logger.warn({ err: (err as Error).message }, 'record: redis read failed; retrying at the next slot');
      }
    }
  } finally {
    reader.destroy();
    redis.disconnect();
    file.end();
    await once(file, 'close');
  }
  return counts;
}
