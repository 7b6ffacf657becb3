/**
 * SlotStore on Redis: one hash per (service, version, slot), one field per pod, TTL (window + 2 slots) so a slot
 * lives a little longer than any window that can read it.
 */
import type { ServiceKeys } from '../core/keys.ts';
import type { SlotStore } from '../core/ports.ts';
import { encodeSlotPayload } from '../core/slot-payload.ts';
import type { SealedSlot } from '../core/slot-recorder.ts';
import type { Redis } from './redis-client.ts';

export class RedisSlotStore implements SlotStore {
  private readonly redis: Redis;
  private readonly keys: ServiceKeys;
  private readonly ttlMs: number;

  /**
   * @param slots window length in slots; the TTL is (slots + 2) x slotMs of each published slot
   */
  constructor(redis: Redis, keys: ServiceKeys, slots: number, slotMs: number) {
    this.redis = redis;
    this.keys = keys;
    this.ttlMs = (slots + 2) * slotMs;
  }

  /** HSET + PEXPIRE in one round trip. Rejects when Redis is unreachable or a command fails. */
  async publish(version: string, pod: string, slot: SealedSlot): Promise<void> {
    const key = this.keys.slot(version, slot.slotIndex);
    const results = await this.redis.multi().hset(key, pod, encodeSlotPayload(slot)).pexpire(key, this.ttlMs).exec();
    const failed = results?.find(([err]) => err !== null);
    if (results === null || failed !== undefined) throw failed?.[0] ?? new Error('transaction aborted');
  }
}
