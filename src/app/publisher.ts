/**
 * The slot publisher: sealed slots go into a bounded outbox and are written to Redis in order, one write in flight.
 * While Redis is away the outbox holds up to `capacity` slots (the oldest is dropped and counted when it is full,
 * and slots that have left the window are dropped as expired); when Redis is back they are published in order.
 */
import type { Logger } from '../config/logger.ts';
import type { SlotStore } from '../core/ports.ts';
import type { SealedSlot } from '../core/slot-recorder.ts';

export class SlotPublisher {
  private readonly store: SlotStore;
  private readonly version: string;
  private readonly pod: string;
  private readonly capacity: number;
  private readonly logger: Logger;
  private readonly outbox: SealedSlot[] = [];
  private flushing: Promise<void> | null = null;
  /** Slots published since start. */
  published = 0;
  /** Slots dropped unpublished since start (buffer full or expired). */
  dropped = 0;
  /** Failed publish attempts since start. */
  failures = 0;
  /** Index of the newest slot published, or -1. */
  lastPublishedSlot = -1;

  constructor(store: SlotStore, version: string, pod: string, capacity: number, logger: Logger) {
    this.store = store;
    this.version = version;
    this.pod = pod;
    this.capacity = capacity;
    this.logger = logger;
  }

  /** Slots waiting for Redis. */
  get buffered(): number {
    return this.outbox.length;
  }

  /**
   * Queues a sealed slot; drops the oldest when the outbox is full. Keeps only what it publishes: a histogram lent
   * with the slot (SlotRecorder.seal) is reused by the next seal, long before a slot waiting for Redis is published.
   */
  enqueue(slot: SealedSlot): void {
    if (this.outbox.length >= this.capacity) {
      this.outbox.shift();
      this.dropped++;
    }
    const { slotIndex, slotMs, requests, errors, encoded } = slot;
    this.outbox.push({ slotIndex, slotMs, requests, errors, encoded });
  }

  /**
   * Publishes what is queued, oldest first; stops at the first failure (the slot stays queued).
   * @param oldestUsefulSlot slots older than this index are dropped as expired (no window can read them any more)
   * @returns true when the outbox is empty afterwards
   */
  flush(oldestUsefulSlot: number): Promise<boolean> {
    this.flushing ??= this.drain(oldestUsefulSlot).finally(() => {
      this.flushing = null;
    });
    return this.flushing.then(() => this.outbox.length === 0);
  }

  private async drain(oldestUsefulSlot: number): Promise<void> {
    while (this.outbox.length > 0) {
      const slot = this.outbox[0]!;
      if (slot.slotIndex < oldestUsefulSlot) {
        this.outbox.shift();
        this.dropped++;
        continue;
      }
      try {
        await this.store.publish(this.version, this.pod, slot);
      } catch (err) {
        this.failures++;
        if (this.failures === 1 || this.failures % 20 === 0) {
          this.logger.warn(
            { err: (err as Error).message, buffered: this.outbox.length, failures: this.failures },
            'slot publish failed; kept for retry',
          );
        }
        return;
      }
      this.outbox.shift();
      this.published++;
      this.lastPublishedSlot = slot.slotIndex;
    }
  }
}
