/**
 * The current slot of one version on one pod: an HDR histogram plus request and error counts, sealed every slot.
 *
 * Slots are aligned on the wall-clock epoch (`slotIndex = floor(nowMs / slotMs)`), so the slots of every pod in the
 * fleet line up without coordination. Like HdrHistogram's `Recorder`, sealing swaps two pre-built histograms: the
 * request path only ever does arithmetic on the active one (no allocation, no await, no I/O). The sealed one is lent
 * to the caller until the next seal (the pod's own window merges it as it is, with no encode/decode round trip); the
 * recorder owns both histograms throughout and alone destroys them.
 */
import { createHistogram, encodeHistogram, recordLatency, type Histogram } from './histogram.ts';

/** The index of the slot that holds `nowMs` (ms since the epoch) for slots of `slotMs` ms. */
export function slotIndexAt(nowMs: number, slotMs: number): number {
  return Math.floor(nowMs / slotMs);
}

/** A sealed slot ready to publish. `encoded` is the compressed base64 HDR histogram of its latencies (µs). */
export interface SealedSlot {
  readonly slotIndex: number;
  /** Slot length, ms. */
  readonly slotMs: number;
  readonly requests: number;
  readonly errors: number;
  readonly encoded: string;
}

/** What {@link SlotRecorder.seal} returns: the sealed slot, and the histogram it sealed, lent until the next seal. */
export interface SealedWithHistogram extends SealedSlot {
  /** The slot's latencies, µs. The recorder's own: read or merge it before the next `seal`; never destroy it. */
  readonly histogram: Histogram;
}

export class SlotRecorder {
  readonly slotMs: number;
  private active: Histogram;
  private spare: Histogram;
  private requests = 0;
  private errors = 0;
  private slotIndex: number;
  /** Requests recorded since start (monotonic), for counters exported at scrape time. */
  totalRequests = 0;
  /** Errors recorded since start (monotonic). */
  totalErrors = 0;

  /**
   * @param slotMs slot length, ms (> 0)
   * @param nowMs the clock's current time, ms since the epoch; fixes the first slot's index
   */
  constructor(slotMs: number, nowMs: number) {
    this.slotMs = slotMs;
    this.slotIndex = slotIndexAt(nowMs, slotMs);
    this.active = createHistogram();
    this.spare = createHistogram();
  }

  /** Index of the slot being recorded. */
  get currentSlotIndex(): number {
    return this.slotIndex;
  }

  /**
   * Records one finished request. Synchronous; no allocation.
   * @param latencyUs arrival to response end, µs (clamped into 1 µs .. 60 s)
   * @param isError whether the outcome counts as an error under the configured classification
   */
  record(latencyUs: number, isError: boolean): void {
    recordLatency(this.active, latencyUs);
    this.requests++;
    this.totalRequests++;
    if (isError) {
      this.errors++;
      this.totalErrors++;
    }
  }

  /**
   * Seals the slot being recorded and starts the one that holds `nowMs`. Returns the sealed slot, encoded
   * (also when it holds no requests: an empty slot tells the fleet this pod is alive and idle), with its histogram
   * lent until the next seal, which clears it for reuse.
   */
  seal(nowMs: number): SealedWithHistogram {
    const sealedHistogram = this.active;
    // The spare is the histogram the previous seal lent: its loan ends here.
    this.spare.reset();
    this.active = this.spare;
    this.spare = sealedHistogram;
    const sealed: SealedWithHistogram = {
      slotIndex: this.slotIndex,
      slotMs: this.slotMs,
      requests: this.requests,
      errors: this.errors,
      encoded: encodeHistogram(sealedHistogram),
      histogram: sealedHistogram,
    };
    this.requests = 0;
    this.errors = 0;
    this.slotIndex = Math.max(this.slotIndex + 1, slotIndexAt(nowMs, this.slotMs));
    return sealed;
  }

  /** Frees both histograms (WebAssembly memory). The recorder must not be used afterwards. */
  destroy(): void {
    this.active.destroy();
    this.spare.destroy();
  }
}
