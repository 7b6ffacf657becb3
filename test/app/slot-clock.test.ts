/**
 * The sidecar's one clock, on vitest's fake timers: boundaries at the end of each slot on the epoch, a late timer
 * seals the slot under way rather than skipping it, periodic tasks wait for the previous run, and stop() ends all.
 */
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { SlotClock } from '../../src/app/slot-clock.ts';

const SLOT_MS = 1000;
const T0 = 1_700_000_000_250; // 250 ms into slot 1_700_000_000

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
});
afterEach(() => {
  vi.useRealTimers();
});

it('calls at the end of every slot, aligned on the epoch, and nothing after stop()', async () => {
  const clock = new SlotClock(SLOT_MS, Date.now);
  let slot = Math.floor(T0 / SLOT_MS);
  const seen: number[] = [];
  clock.eachSlot(
    () => slot,
    () => {
      seen.push(Date.now());
      slot++;
    },
  );
  clock.after(2500, () => seen.push(-1));
  await vi.advanceTimersByTimeAsync(2_750);
  expect(seen).toEqual([1_700_000_001_000, 1_700_000_002_000, -1, 1_700_000_003_000]);
  clock.stop();
  clock.after(10, () => seen.push(-2));
  await vi.advanceTimersByTimeAsync(5_000);
  expect(seen).toHaveLength(4);
});

it('runs a slot that is already over at once, then keeps to the boundaries', async () => {
  const clock = new SlotClock(SLOT_MS, Date.now);
  let slot = Math.floor(T0 / SLOT_MS) - 3; // the recorder's slot, three behind after a pause
  const seen: number[] = [];
  clock.eachSlot(
    () => slot,
    () => {
      seen.push(Date.now());
      slot = Math.max(slot + 1, Math.floor(Date.now() / SLOT_MS));
    },
  );
  await vi.advanceTimersByTimeAsync(800);
  expect(seen).toEqual([T0, 1_700_000_001_000]);
  clock.stop();
});

it('repeats a task the period after each run settles', async () => {
  const clock = new SlotClock(SLOT_MS, Date.now);
  const started: number[] = [];
  clock.every(300, async () => {
    started.push(Date.now() - T0);
    await new Promise((resolve) => setTimeout(resolve, 100));
  });
  await vi.advanceTimersByTimeAsync(1_000);
  expect(started).toEqual([0, 400, 800]);
  clock.stop();
  await vi.advanceTimersByTimeAsync(1_000);
  expect(started).toEqual([0, 400, 800]);
});
