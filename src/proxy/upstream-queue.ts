/**
 * A bounded wait in front of the upstream pool. At most `limit` requests run upstream at once (the pool's
 * connections, pipelining 1); the others wait first come, first served, for at most `timeoutMs`, and are then turned
 * away (the proxy answers 503 `overloaded`). Without it, undici queues without limit: clients held a pool of 128
 * hostage for 17 s, and the time queued was charged to the version.
 *
 * One timer serves the whole queue: everyone waits the same `timeoutMs` in arrival order, so deadlines are in order
 * too and only the oldest waiter's can be next. A request that starts at once allocates nothing here.
 */

/** A request waiting for its turn; pass it to {@link UpstreamQueue.cancel} when its client leaves first. */
export interface Waiter {
  readonly sinceMs: number;
  readonly start: (waitedMs: number) => void;
  readonly expire: (waitedMs: number) => void;
  settled: boolean;
}

export class UpstreamQueue {
  private readonly limit: number;
  private readonly timeoutMs: number;
  private readonly now: () => number;
  private running = 0;
  private waiting = 0;
  private queue: Waiter[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerFor: Waiter | null = null;

  /**
   * @param limit requests allowed upstream at once (>= 1)
   * @param timeoutMs longest wait of a queued request, ms (> 0)
   * @param now high-resolution clock, ms
   */
  constructor(limit: number, timeoutMs: number, now: () => number) {
    this.limit = limit;
    this.timeoutMs = timeoutMs;
    this.now = now;
  }

  /** Requests running upstream now. */
  get inFlight(): number {
    return this.running;
  }

  /** Requests waiting for their turn now. */
  get queued(): number {
    return this.waiting;
  }

  /**
   * Runs `start(0)` at once when fewer than `limit` requests run (and nobody waits), and returns null; otherwise
   * queues the request and returns its waiter: `start(waitedMs)` runs when its turn comes, or `expire(waitedMs)` once
   * `timeoutMs` has passed by the injected clock (never sooner). Exactly one of them runs, unless the waiter is
   * cancelled. Every `start` must be followed by one {@link leave}.
   */
  enter(start: (waitedMs: number) => void, expire: (waitedMs: number) => void): Waiter | null {
    if (this.running < this.limit && this.waiting === 0) {
      this.running++;
      start(0);
      return null;
    }
    const waiter: Waiter = { sinceMs: this.now(), start, expire, settled: false };
    this.queue.push(waiter);
    this.waiting++;
    if (this.timer === null) this.arm();
    return waiter;
  }

  /** A started request has finished upstream: its place goes to the oldest waiter. */
  leave(): void {
    this.running--;
    const next = this.shift();
    if (next === null) return;
    this.running++;
    if (this.timerFor === next) this.arm();
    next.start(this.now() - next.sinceMs);
  }

  /** The waiter's client left: it will neither start nor expire. */
  cancel(waiter: Waiter): void {
    if (waiter.settled) return;
    waiter.settled = true;
    this.waiting--;
    if (this.timerFor === waiter) this.arm();
  }

  /** Stops the timer; waiters stay queued (the server's connections are being cut, which cancels them). */
  destroy(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerFor = null;
  }

  /** The oldest waiter not settled yet, taken off the queue and marked settled; null when none. */
  private shift(): Waiter | null {
    while (this.head < this.queue.length) {
      const waiter = this.queue[this.head]!;
      this.head++;
      if (waiter.settled) continue;
      waiter.settled = true;
      this.waiting--;
      this.compact();
      return waiter;
    }
    this.compact();
    return null;
  }

  private peek(): Waiter | null {
    while (this.head < this.queue.length && this.queue[this.head]!.settled) this.head++;
    return this.head < this.queue.length ? this.queue[this.head]! : null;
  }

  /** Drops the taken part of the array once it is most of it, so that a long saturation does not grow it. */
  private compact(): void {
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /** (Re)sets the timer for the oldest waiter's deadline. */
  private arm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    const first = this.peek();
    this.timerFor = first;
    this.timer = first === null ? null : setTimeout(this.expireDue, Math.max(1, Math.ceil(first.sinceMs + this.timeoutMs - this.now())));
  }

  /** Turns away every waiter whose deadline has passed, by the injected clock (a timer may fire a little early). */
  private readonly expireDue = (): void => {
    this.timer = null;
    this.timerFor = null;
    const nowMs = this.now();
    for (let first = this.peek(); first !== null && nowMs >= first.sinceMs + this.timeoutMs; first = this.peek()) {
      this.shift();
      first.expire(nowMs - first.sinceMs);
    }
    this.arm();
  };
}
