/**
 * The sidecar's one clock: every timer of a sidecar (slot boundaries, the evaluation after each, lease renewals,
 * publish retries) runs through it, so that `stop()` ends them all and nothing fires after a close.
 *
 * Slot boundaries are aligned on the wall-clock epoch, as slots are (src/core/slot-recorder.ts): slot i ends at
 * (i + 1) x slotMs on every pod's clock.
 */
export class SlotClock {
  readonly slotMs: number;
  private readonly now: () => number;
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  /**
   * @param slotMs slot length, ms
   * @param now wall clock, ms since the epoch
   */
  constructor(slotMs: number, now: () => number) {
    this.slotMs = slotMs;
    this.now = now;
  }

  /** Runs `fn` once, `ms` from now (at the next turn when `ms` <= 0); does nothing once stopped. */
  after(ms: number, fn: () => void): void {
    if (this.stopped) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        fn();
      },
      Math.max(0, ms),
    );
    this.timers.add(timer);
  }

  /**
   * Calls `onBoundary` at the end of every slot until stopped. `slotOf()` names the slot under way (the recorder's: a
   * timer that fires late, after a pause, seals it then rather than skipping it); each call comes at its end.
   */
  eachSlot(slotOf: () => number, onBoundary: () => void): void {
    const tick = (): void => {
      onBoundary();
      this.atEndOf(slotOf(), tick);
    };
    this.atEndOf(slotOf(), tick);
  }

  /** Runs `task` now, and again `periodMs` after each run settles, until stopped. `task` must not reject. */
  every(periodMs: number, task: () => Promise<unknown>): void {
    const run = (): void => {
      if (this.stopped) return;
      void task().then(() => this.after(periodMs, run));
    };
    run();
  }

  /** Cancels every pending timer; nothing runs afterwards. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  private atEndOf(slotIndex: number, fn: () => void): void {
    this.after((slotIndex + 1) * this.slotMs - this.now(), fn);
  }
}
