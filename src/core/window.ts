/**
 * The rolling window of one version across the fleet: the merge of the last N slots of every pod.
 *
 * Incremental (ARCHITECTURE.md, "Keep the window incremental"): each pod's payload for a slot is merged once (into its slot and into the running
 * window); when a slot leaves the window its histogram is subtracted, so an evaluation costs the decoding of what is
 * new, not of the whole window. Quantiles come from the merged histogram, never from averaging per-pod quantiles.
 */
import { createHistogram, quantileUs, type Histogram } from './histogram.ts';
import { shareAbove } from './statistics.ts';

/** What the judge sees of one version. Latencies in µs; NaN when the window holds no requests. */
export interface WindowSnapshot {
  readonly version: string;
  readonly requests: number;
  readonly errors: number;
  /** errors / requests, 0..1; NaN when requests is 0. */
  readonly errorRatio: number;
  readonly p50Us: number;
  readonly p95Us: number;
  readonly p99Us: number;
  /** requests / the time the window's data covers, in seconds (coveredMs, else windowMs). */
  readonly requestsPerSecond: number;
  /** Window length, ms (slots x slotMs). */
  readonly windowMs: number;
  /**
   * Time the window's data covers, ms: from its oldest reported slot to its last slot, at most windowMs (shorter while
   * a rollout's first window fills). Absent: windowMs.
   */
  readonly coveredMs?: number;
  /** Distinct pods that reported at least one slot in the window. */
  readonly pods: number;
  /** Slots of the window that at least one pod reported. */
  readonly slotsReported: number;
  /**
   * The window's latency at a quantile 0..1, µs (NaN when empty), from the merged histogram. Valid until the window
   * next changes; not serialized (JSON drops it).
   */
  readonly quantileUs: (quantile: number) => number;
}

/** What one slot of one version holds across the fleet (what the sequential detector observes). */
export interface SlotCounts {
  readonly requests: number;
  readonly errors: number;
  /** Requests slower than `latencyUs` (µs) in the slot. */
  countAbove(latencyUs: number): number;
}

/** One slot's counts of both versions (null: no pod of that version reported it). */
export interface SlotCountsPair {
  readonly baseline: SlotCounts | null;
  readonly canary: SlotCounts | null;
}

/** What an evaluation reads of the fleet: both versions' windows and, for the sequential checks, each slot's counts. */
export interface WindowRead {
  readonly baseline: WindowSnapshot;
  readonly canary: WindowSnapshot;
  /** The counts of one slot of the window; valid until the window next changes. */
  slotCounts(slotIndex: number): SlotCountsPair;
}

/** One pod's slot with its latency histogram (µs): decoded from a payload, or lent by SlotRecorder.seal. */
export interface SlotHistogram {
  readonly slotIndex: number;
  readonly requests: number;
  readonly errors: number;
  readonly histogram: Histogram;
}

/**
 * Most values one window (or one of its slots) holds: the int32 buckets' limit. Past it a bucket would wrap to a
 * negative count and every quantile read 0. The window saturates there instead: it keeps what it holds and refuses
 * the payload that would pass it.
 */
export const MAX_WINDOW_COUNT = 2 ** 31 - 1;

interface SlotEntry {
  readonly histogram: Histogram;
  requests: number;
  errors: number;
  readonly pods: Set<string>;
}

export class FleetWindow {
  readonly version: string;
  readonly slotMs: number;
  readonly slots: number;
  private readonly entries = new Map<number, SlotEntry>();
  private readonly merged: Histogram;
  /** The last slot of the window (advanceTo), or null before the first. */
  private lastIndex: number | null = null;
  private requests = 0;
  private errors = 0;

  /**
   * @param version the version this window holds (e.g. `v1`)
   * @param slotMs slot length, ms
   * @param slots window length in slots (N)
   */
  constructor(version: string, slotMs: number, slots: number) {
    this.version = version;
    this.slotMs = slotMs;
    this.slots = slots;
    this.merged = createHistogram();
  }

  /** Whether `pod`'s payload for `slotIndex` is already merged (so the reader need not decode it again). */
  has(slotIndex: number, pod: string): boolean {
    return this.entries.get(slotIndex)?.pods.has(pod) ?? false;
  }

  /**
   * Merges one pod's slot. A second payload from the same pod for the same slot is ignored (publishing is
   * at-least-once). Does not take ownership of `slot.histogram`: the caller destroys it.
   * @returns true when merged, false when it was a duplicate
   * @throws RangeError when the merge would take the window's or the slot's count past {@link MAX_WINDOW_COUNT} (the
   *   window is unchanged: it saturates rather than wraps)
   */
  add(pod: string, slot: SlotHistogram): boolean {
    const existing = this.entries.get(slot.slotIndex);
    if (existing?.pods.has(pod)) return false;
    const count = slot.histogram.totalCount;
    if (this.merged.totalCount + count > MAX_WINDOW_COUNT || (existing?.histogram.totalCount ?? 0) + count > MAX_WINDOW_COUNT) {
      throw new RangeError(`merging ${count} values would take the window of ${this.version} past ${MAX_WINDOW_COUNT}`);
    }
    const entry = existing ?? { histogram: createHistogram(), requests: 0, errors: 0, pods: new Set<string>() };
    // Merge before recording anything else: a histogram that does not fit throws and leaves the window unchanged.
    try {
      entry.histogram.add(slot.histogram);
    } catch (err) {
      if (existing === undefined) entry.histogram.destroy();
      throw err;
    }
    if (existing === undefined) this.entries.set(slot.slotIndex, entry);
    entry.pods.add(pod);
    entry.requests += slot.requests;
    entry.errors += slot.errors;
    this.merged.add(slot.histogram);
    this.requests += slot.requests;
    this.errors += slot.errors;
    return true;
  }

  /** Drops every slot outside [lastSlotIndex - slots + 1, lastSlotIndex], subtracting it from the window. */
  advanceTo(lastSlotIndex: number): void {
    this.lastIndex = lastSlotIndex;
    const first = lastSlotIndex - this.slots + 1;
    for (const [index, entry] of this.entries) {
      if (index >= first && index <= lastSlotIndex) continue;
      this.merged.subtract(entry.histogram);
      this.requests -= entry.requests;
      this.errors -= entry.errors;
      entry.histogram.destroy();
      this.entries.delete(index);
    }
  }

  /**
   * One slot's counts across the pods merged so far (what the sequential detector observes), or null when no pod
   * reported it. `countAbove` reads the slot's own histogram: valid until the slot leaves the window.
   */
  slotCounts(slotIndex: number): SlotCounts | null {
    const entry = this.entries.get(slotIndex);
    if (entry === undefined) return null;
    const quantile = (q: number): number => quantileUs(entry.histogram, q);
    return {
      requests: entry.requests,
      errors: entry.errors,
      countAbove: (latencyUs) => Math.round(shareAbove(quantile, latencyUs) * entry.requests),
    };
  }

  /** The merged figures of the slots currently held. */
  snapshot(): WindowSnapshot {
    const pods = new Set<string>();
    for (const entry of this.entries.values()) for (const pod of entry.pods) pods.add(pod);
    const windowMs = this.slots * this.slotMs;
    let oldest = Number.POSITIVE_INFINITY;
    for (const index of this.entries.keys()) oldest = Math.min(oldest, index);
    const coveredMs =
      this.lastIndex === null || this.entries.size === 0 ? windowMs : Math.min(windowMs, (this.lastIndex - oldest + 1) * this.slotMs);
    return {
      version: this.version,
      requests: this.requests,
      errors: this.errors,
      errorRatio: this.requests === 0 ? Number.NaN : this.errors / this.requests,
      p50Us: quantileUs(this.merged, 0.5),
      p95Us: quantileUs(this.merged, 0.95),
      p99Us: quantileUs(this.merged, 0.99),
      requestsPerSecond: this.requests / (coveredMs / 1000),
      windowMs,
      coveredMs,
      pods: pods.size,
      slotsReported: this.entries.size,
      quantileUs: (quantile) => quantileUs(this.merged, quantile),
    };
  }

  /** Frees every histogram. The window must not be used afterwards. */
  destroy(): void {
    for (const entry of this.entries.values()) entry.histogram.destroy();
    this.entries.clear();
    this.merged.destroy();
  }
}
