/**
 * FleetWindows, the one place a pod-slot payload is decoded and merged: each payload is merged, a duplicate (merged
 * or found corrupt before) or corrupt; a corrupt one is counted once and not decoded again while its slot is in the
 * window; a lent histogram (SlotRecorder.seal) is merged and left to its owner.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FleetWindows } from '../../src/core/fleet-windows.ts';
import { encodeSlotPayload } from '../../src/core/slot-payload.ts';
import { SlotRecorder } from '../../src/core/slot-recorder.ts';

const SLOT_MS = 1000;
const owned: Array<{ destroy(): void }> = [];
afterEach(() => {
  for (const x of owned.splice(0)) x.destroy();
});
function own<T extends { destroy(): void }>(x: T): T {
  owned.push(x);
  return x;
}

/** The payload of one pod's slot `slotIndex` holding `latenciesUs`, the first `errors` of them errors. */
function payload(slotIndex: number, latenciesUs: number[], errors = 0): string {
  const rec = own(new SlotRecorder(SLOT_MS, slotIndex * SLOT_MS));
  for (const [i, us] of latenciesUs.entries()) rec.record(us, i < errors);
  return encodeSlotPayload(rec.seal((slotIndex + 1) * SLOT_MS));
}

describe('FleetWindows.ingest', () => {
  it('merges a payload once, answers duplicate for the same pod and slot, and merges other pods and slots', () => {
    const w = own(new FleetWindows(['v1', 'v2'], SLOT_MS, 3));
    w.advanceTo(11);
    expect(w.ingest('v2', 10, 'a', payload(10, [1000, 2000], 1))).toBe('merged');
    expect(w.ingest('v2', 10, 'a', payload(10, [9000]))).toBe('duplicate');
    expect(w.ingest('v2', 10, 'b', payload(10, [3000]))).toBe('merged');
    expect(w.ingest('v2', 11, 'a', payload(11, [4000]))).toBe('merged');
    expect(w.snapshot('v2')).toMatchObject({ requests: 4, errors: 1, pods: 2, slotsReported: 2 });
    expect(w.snapshot('v1')).toMatchObject({ requests: 0, slotsReported: 0 });
  });

  it('counts a corrupt payload once and answers duplicate while its slot stays in the window', () => {
    const w = own(new FleetWindows(['v1', 'v2'], SLOT_MS, 2));
    w.advanceTo(5);
    expect(w.ingest('v1', 5, 'a', 'garbage')).toBe('corrupt');
    expect(w.ingest('v1', 5, 'a', 'garbage')).toBe('duplicate');
    expect(w.ingest('v1', 5, 'a', payload(5, [1000]))).toBe('duplicate');
    expect(w.ingest('v1', 4, 'a', payload(5, [1000]))).toBe('corrupt'); // a payload for another slot
    expect(w.corruptTotal).toBe(2);
    expect(w.snapshot('v1').slotsReported).toBe(0);
    w.advanceTo(7);
    w.advanceTo(5); // slot 5 left the window: what it held is forgotten
    expect(w.ingest('v1', 5, 'a', payload(5, [1000]))).toBe('merged');
    expect(w.corruptTotal).toBe(2);
  });

  it('refuses a version it keeps no window of', () => {
    const w = own(new FleetWindows(['v1'], SLOT_MS, 2));
    expect(w.holds('v1')).toBe(true);
    expect(w.holds('v9')).toBe(false);
    expect(() => w.ingest('v9', 1, 'a', payload(1, [1]))).toThrow(expect.objectContaining({ code: 'CG_INTERNAL' }));
  });
});

describe('FleetWindows.add', () => {
  it('merges a lent histogram without destroying it', () => {
    const rec = own(new SlotRecorder(SLOT_MS, 20 * SLOT_MS));
    rec.record(5000, true);
    rec.record(7000, false);
    const sealed = rec.seal(21 * SLOT_MS);
    const w = own(new FleetWindows(['v1'], SLOT_MS, 4));
    w.advanceTo(20);
    expect(w.add('v1', 'me', sealed)).toBe('merged');
    expect(w.add('v1', 'me', sealed)).toBe('duplicate');
    expect(sealed.histogram.totalCount).toBe(2); // still the recorder's, still readable
    expect(w.snapshot('v1')).toMatchObject({ requests: 2, errors: 1, pods: 1 });
  });
});

describe('FleetWindows.read', () => {
  it("pairs both versions' snapshots and slot counts", () => {
    const w = own(new FleetWindows(['v1', 'v2'], SLOT_MS, 4));
    w.advanceTo(3);
    w.ingest('v1', 2, 'a', payload(2, [1000, 1000, 1000], 1));
    w.ingest('v2', 3, 'b', payload(3, [50_000]));
    const read = w.read('v1', 'v2');
    expect(read.baseline).toMatchObject({ version: 'v1', requests: 3, errors: 1 });
    expect(read.canary).toMatchObject({ version: 'v2', requests: 1 });
    expect(read.slotCounts(2).baseline).toMatchObject({ requests: 3, errors: 1 });
    expect(read.slotCounts(2).canary).toBeNull();
    expect(read.slotCounts(3).canary?.countAbove(10_000)).toBe(1);
  });
});
