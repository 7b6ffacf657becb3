/**
 * Reads the fleet's rolling windows of baseline and canary from Redis in one pipeline and merges what is new into
 * incremental {@link FleetWindow}s. A pod whose slot is late is absent from that read and merged by a later one;
 * a field that fails to decode is skipped, counted once, and never decoded again.
 */
import type { ServiceKeys } from '../core/keys.ts';
import { decodeSlotPayload } from '../core/slot-payload.ts';
import { FleetWindow, type WindowSnapshot } from '../core/window.ts';
import type { Redis } from './redis-client.ts';

export interface FleetRead {
  readonly baseline: WindowSnapshot;
  readonly canary: WindowSnapshot;
  /** Payloads merged by this read (new pod-slots). */
  readonly merged: number;
  /** Corrupt payloads first seen by this read. */
  readonly corrupt: number;
}

export class FleetReader {
  private readonly redis: Redis;
  private readonly keys: ServiceKeys;
  private readonly slotMs: number;
  private readonly slots: number;
  private readonly windows: Map<string, FleetWindow>;
  private readonly corruptSeen = new Set<string>();
  private readonly baselineVersion: string;
  private readonly canaryVersion: string;
  /** Corrupt payloads skipped since start. */
  corruptTotal = 0;

  /** Called with every payload this reader merges, as stored (`canary-gate record` writes them to a recording). */
  tap: ((version: string, slotIndex: number, pod: string, payload: string) => void) | null = null;

  constructor(redis: Redis, keys: ServiceKeys, versions: { baseline: string; canary: string }, slotMs: number, slots: number) {
    this.redis = redis;
    this.keys = keys;
    this.slotMs = slotMs;
    this.slots = slots;
    this.baselineVersion = versions.baseline;
    this.canaryVersion = versions.canary;
    this.windows = new Map([
      [versions.baseline, new FleetWindow(versions.baseline, slotMs, slots)],
      [versions.canary, new FleetWindow(versions.canary, slotMs, slots)],
    ]);
  }

  /**
   * Reads slots [lastSlotIndex - slots + 1, lastSlotIndex] of both versions (HGETALL each, one pipeline).
   * @throws the Redis error when the pipeline cannot run (the caller reports an inconclusive evaluation)
   */
  async read(lastSlotIndex: number): Promise<FleetRead> {
    const first = lastSlotIndex - this.slots + 1;
    const pipeline = this.redis.pipeline();
    const plan: Array<[FleetWindow, number]> = [];
    for (const window of this.windows.values()) {
      window.advanceTo(lastSlotIndex);
      for (let index = first; index <= lastSlotIndex; index++) {
        pipeline.hgetall(this.keys.slot(window.version, index));
        plan.push([window, index]);
      }
    }
    for (const key of this.corruptSeen) if (Number(key.split('|')[1]) < first) this.corruptSeen.delete(key);
    const replies = await pipeline.exec();
    if (replies === null) throw new Error('pipeline aborted');
    let merged = 0;
    let corrupt = 0;
    replies.forEach(([err, value], i) => {
      if (err) throw err;
      const [window, index] = plan[i]!;
      for (const [pod, text] of Object.entries(value as Record<string, string>)) {
        if (window.has(index, pod)) continue;
        const seenKey = `${window.version}|${index}|${pod}`;
        if (this.corruptSeen.has(seenKey)) continue;
        let decoded;
        try {
          decoded = decodeSlotPayload(text, index, this.slotMs);
        } catch {
          this.corruptSeen.add(seenKey);
          corrupt++;
          continue;
        }
        try {
          window.add(pod, decoded);
        } catch {
          // A histogram that decodes but does not fit the window: corrupt, counted once, not retried every evaluation.
          this.corruptSeen.add(seenKey);
          corrupt++;
          continue;
        } finally {
          decoded.histogram.destroy();
        }
        merged++;
        this.tap?.(window.version, index, pod, text);
      }
    });
    this.corruptTotal += corrupt;
    return {
      baseline: this.windows.get(this.baselineVersion)!.snapshot(),
      canary: this.windows.get(this.canaryVersion)!.snapshot(),
      merged,
      corrupt,
    };
  }

  destroy(): void {
    for (const window of this.windows.values()) window.destroy();
  }
}
