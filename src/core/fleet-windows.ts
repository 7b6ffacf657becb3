/**
 * The rolling windows of the versions one reader follows (the lease holder: baseline and canary; replay: the
 * recording's two; a pod: its own version), and the one place where a pod-slot payload is decoded and merged.
 *
 * `ingest` answers what became of a payload: `merged`; `duplicate` when this pod's payload for that slot was merged
 * or found corrupt before (publishing is at-least-once, and a reader sees a slot hash again while it grows); `corrupt`
 * when it does not decode or does not fit the window. A corrupt payload is remembered, counted once and never decoded
 * again until its slot leaves the window. Every decoded histogram is destroyed here, whatever happens to it.
 */
import { type DecodedSlot, decodeSlotPayload } from './slot-payload.ts';
import { FleetWindow, type SlotCounts, type SlotHistogram, type WindowRead, type WindowSnapshot } from './window.ts';
import { CanaryGateError, ErrorCodes } from './errors.ts';

/** What became of one pod-slot payload. */
export type Ingested = 'merged' | 'duplicate' | 'corrupt';

interface Followed {
  readonly window: FleetWindow;
  /** Slot index -> pods whose payload for it was corrupt. */
  readonly corrupt: Map<number, Set<string>>;
}

export class FleetWindows {
  readonly slotMs: number;
  readonly slots: number;
  private readonly followed = new Map<string, Followed>();
  private corruptCount = 0;

  /**
   * @param versions the versions to keep a window of (e.g. `['v1', 'v2']`)
   * @param slotMs slot length, ms
   * @param slots window length in slots (N)
   */
  constructor(versions: readonly string[], slotMs: number, slots: number) {
    this.slotMs = slotMs;
    this.slots = slots;
    for (const version of versions) this.followed.set(version, { window: new FleetWindow(version, slotMs, slots), corrupt: new Map() });
  }

  /** Corrupt payloads seen since start, each counted once. */
  get corruptTotal(): number {
    return this.corruptCount;
  }

  /** Whether a window of `version` is kept. */
  holds(version: string): boolean {
    return this.followed.has(version);
  }

  /** Drops every slot outside [lastSlotIndex - slots + 1, lastSlotIndex] from every window, and what was corrupt in it. */
  advanceTo(lastSlotIndex: number): void {
    const first = lastSlotIndex - this.slots + 1;
    for (const { window, corrupt } of this.followed.values()) {
      window.advanceTo(lastSlotIndex);
      for (const index of corrupt.keys()) if (index < first || index > lastSlotIndex) corrupt.delete(index);
    }
  }

  /**
   * Decodes one pod's payload for a slot of `version` and merges it, unless that pod's payload for the slot was seen.
   * @param payload the stored text (src/core/slot-payload.ts)
   * @throws CanaryGateError CG_INTERNAL when no window of `version` is kept
   */
  ingest(version: string, slotIndex: number, pod: string, payload: string): Ingested {
    const followed = this.followedOf(version);
    if (followed.window.has(slotIndex, pod) || followed.corrupt.get(slotIndex)?.has(pod)) return 'duplicate';
    let decoded: DecodedSlot;
    try {
      decoded = decodeSlotPayload(payload, slotIndex, this.slotMs);
    } catch {
      return this.markCorrupt(followed, slotIndex, pod);
    }
    try {
      return this.merge(followed, pod, decoded);
    } finally {
      decoded.histogram.destroy();
    }
  }

  /**
   * Records one pod's payload for a slot of `version` as corrupt without decoding it (the reader found it too long to
   * fetch): counted once, like a payload that does not decode.
   * @throws CanaryGateError CG_INTERNAL when no window of `version` is kept
   */
  reject(version: string, slotIndex: number, pod: string): Ingested {
    const followed = this.followedOf(version);
    if (followed.window.has(slotIndex, pod) || followed.corrupt.get(slotIndex)?.has(pod)) return 'duplicate';
    return this.markCorrupt(followed, slotIndex, pod);
  }

  /**
   * Merges a slot whose histogram the caller owns and keeps (it is not destroyed here).
   * @throws CanaryGateError CG_INTERNAL when no window of `version` is kept
   */
  add(version: string, pod: string, slot: SlotHistogram): Ingested {
    const followed = this.followedOf(version);
    if (followed.corrupt.get(slot.slotIndex)?.has(pod)) return 'duplicate';
    return this.merge(followed, pod, slot);
  }

  /** The merged figures of `version`'s window. @throws CanaryGateError CG_INTERNAL when no window of `version` is kept */
  snapshot(version: string): WindowSnapshot {
    return this.followedOf(version).window.snapshot();
  }

  /** One slot's counts of `version` (null: no pod reported it). @throws CanaryGateError CG_INTERNAL when no window of `version` is kept */
  slotCounts(version: string, slotIndex: number): SlotCounts | null {
    return this.followedOf(version).window.slotCounts(slotIndex);
  }

  /** What an evaluation reads: both versions' windows and their slots. @throws RangeError when either is not kept */
  read(baseline: string, canary: string): WindowRead {
    const b = this.followedOf(baseline).window;
    const c = this.followedOf(canary).window;
    return {
      baseline: b.snapshot(),
      canary: c.snapshot(),
      slotCounts: (index) => ({ baseline: b.slotCounts(index), canary: c.slotCounts(index) }),
    };
  }

  /** Frees every histogram. The windows must not be used afterwards. */
  destroy(): void {
    for (const { window } of this.followed.values()) window.destroy();
  }

  private followedOf(version: string): Followed {
    const followed = this.followed.get(version);
    if (followed === undefined) throw new CanaryGateError(ErrorCodes.INTERNAL, `no window of version ${version} is kept`);
    return followed;
  }

  private merge(followed: Followed, pod: string, slot: SlotHistogram): Ingested {
    try {
      return followed.window.add(pod, slot) ? 'merged' : 'duplicate';
    } catch {
      // A histogram that decodes but does not fit the window: corrupt, counted once, not retried every evaluation.
      return this.markCorrupt(followed, slot.slotIndex, pod);
    }
  }

  private markCorrupt(followed: Followed, slotIndex: number, pod: string): Ingested {
    const pods = followed.corrupt.get(slotIndex) ?? new Set<string>();
    pods.add(pod);
    followed.corrupt.set(slotIndex, pods);
    this.corruptCount++;
    return 'corrupt';
  }
}
