/**
 * Reads the fleet's rolling windows of baseline and canary from Redis and merges what is new into incremental
 * {@link FleetWindow}s. A pod whose slot is late is absent from that read and merged by a later one; a field that
 * fails to decode is skipped, counted once, and never decoded again.
 *
 * Each read costs two pipelines: HLEN of every slot hash of the window, then HGETALL of only those whose field count
 * changed since this reader last fetched them. Slot hashes only grow (one field per pod, written once) until they
 * expire, so in steady state a read transfers the newest slots, not the whole window: at 1000 pods x 12 slots that is
 * about 1.4 MB instead of 16.6 MB per evaluation (bench/fleet-scale.ts).
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
  /** Slot key -> its field count when this reader last fetched it (HGETALL); a key whose HLEN still says so is skipped. */
  private readonly fetchedLength = new Map<string, { index: number; length: number }>();
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
   * Reads slots [lastSlotIndex - slots + 1, lastSlotIndex] of both versions: HLEN of each (one pipeline), then
   * HGETALL of each whose field count changed since it was last fetched (a second pipeline, skipped when none did).
   * @throws the Redis error when a pipeline cannot run (the caller reports an inconclusive evaluation)
   */
  async read(lastSlotIndex: number): Promise<FleetRead> {
    const first = lastSlotIndex - this.slots + 1;
    const candidates: Array<{ window: FleetWindow; index: number; key: string }> = [];
    for (const window of this.windows.values()) {
      window.advanceTo(lastSlotIndex);
      for (let index = first; index <= lastSlotIndex; index++) candidates.push({ window, index, key: this.keys.slot(window.version, index) });
    }
    for (const key of this.corruptSeen) if (Number(key.split('|')[1]) < first) this.corruptSeen.delete(key);
    for (const [key, seen] of this.fetchedLength) if (seen.index < first) this.fetchedLength.delete(key);

    const lengths = await this.exec(candidates.map((c) => ['hlen', c.key]));
    const plan = candidates.filter((c, i) => this.fetchedLength.get(c.key)?.length !== lengths[i]);
    const replies = plan.length === 0 ? [] : await this.exec(plan.map((c) => ['hgetall', c.key]));
    let merged = 0;
    let corrupt = 0;
    replies.forEach((value, i) => {
      const { window, index, key } = plan[i]!;
      // What HGETALL returned, not what HLEN said: a field written between the two is fetched again next time.
      this.fetchedLength.set(key, { index, length: Object.keys(value as Record<string, string>).length });
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

  /** Runs commands in one pipeline; resolves to their replies in order. @throws the first command's error */
  private async exec(commands: Array<[string, string]>): Promise<unknown[]> {
    const replies = await this.redis.pipeline(commands).exec();
    if (replies === null) throw new Error('pipeline aborted');
    return replies.map(([err, value]) => {
      if (err) throw err;
      return value;
    });
  }

  destroy(): void {
    for (const window of this.windows.values()) window.destroy();
  }
}
