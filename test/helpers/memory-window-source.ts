/**
 * The fleet's windows in memory: what FleetReader reads from Redis, without Redis. `put` stores one pod's slot as the
 * payload the pod would publish (recorded by a real SlotRecorder); `read` ingests the window's payloads into real
 * FleetWindows, so the evaluator sees the snapshots and slot counts that it sees in production.
 */
import { FleetWindows } from '../../src/core/fleet-windows.ts';
import type { WindowSource } from '../../src/core/ports.ts';
import { encodeSlotPayload } from '../../src/core/slot-payload.ts';
import { SlotRecorder } from '../../src/core/slot-recorder.ts';
import type { WindowRead } from '../../src/core/window.ts';

/** One pod's slot: `requests` requests of `latencyUs` each, the first `errors` of them errors. */
export interface PodSlot {
  readonly requests: number;
  readonly errors?: number;
  readonly latencyUs?: number;
}

export class MemoryWindowSource implements WindowSource {
  /** false: every read rejects, as with Redis unreachable. */
  reachable = true;
  /** Reads made so far. */
  reads = 0;
  private readonly versions: { readonly baseline: string; readonly canary: string };
  private readonly slotMs: number;
  private readonly slots: number;
  private readonly windows: FleetWindows;
  private readonly payloads: Array<{ version: string; pod: string; slotIndex: number; text: string }> = [];

  constructor(versions: { baseline: string; canary: string }, slotMs: number, slots: number) {
    this.versions = versions;
    this.slotMs = slotMs;
    this.slots = slots;
    this.windows = new FleetWindows([versions.baseline, versions.canary], slotMs, slots);
  }

  /** Publishes one pod's slot of `version`. */
  put(version: string, pod: string, slotIndex: number, slot: PodSlot): void {
    const recorder = new SlotRecorder(this.slotMs, slotIndex * this.slotMs);
    try {
      for (let i = 0; i < slot.requests; i++) recorder.record(slot.latencyUs ?? 10_000, i < (slot.errors ?? 0));
      this.payloads.push({ version, pod, slotIndex, text: encodeSlotPayload(recorder.seal((slotIndex + 1) * this.slotMs)) });
    } finally {
      recorder.destroy();
    }
  }

  async read(lastSlotIndex: number): Promise<WindowRead> {
    if (!this.reachable) throw new Error('fleet read: connection refused (memory store unreachable)');
    this.reads++;
    const first = lastSlotIndex - this.slots + 1;
    this.windows.advanceTo(lastSlotIndex);
    for (const p of this.payloads)
      if (p.slotIndex >= first && p.slotIndex <= lastSlotIndex) this.windows.ingest(p.version, p.slotIndex, p.pod, p.text);
    return this.windows.read(this.versions.baseline, this.versions.canary);
  }

  /** Frees the windows' histograms. */
  destroy(): void {
    this.windows.destroy();
  }
}
