/**
 * The slow-read guard: a client that does not read its response keeps the response's upstream connection busy (the
 * proxy pauses the upstream body while the client holds it back, and undici cannot reuse the connection until the
 * body is done). A few such clients can hold the whole pool, and every request queued behind them then gets 503
 * after `queueTimeout`. So while other requests wait for an upstream connection, a response that its client has held
 * back for more than `graceMs` without reading is cut (its connection destroyed); without contention nobody is cut.
 *
 * The relay reports only the moments a response starts and stops being held back (a write returned false, then
 * 'drain'), so a response whose client keeps up costs nothing here. One timer serves all held responses, and runs
 * only while some are held.
 */

/** What the guard needs of a response: to be cut. */
export interface Cuttable {
  destroy(): unknown;
}

export interface ReadGuardOptions {
  /** Longest time a client may hold its response back while others wait, ms. */
  readonly graceMs: number;
  /** Whether other requests wait for an upstream connection now. */
  readonly contended: () => boolean;
  /** High-resolution clock, ms. */
  readonly now: () => number;
  /** Called once per response cut, before it is destroyed. */
  readonly onCut: () => void;
}

export class ReadGuard {
  private readonly options: ReadGuardOptions;
  /** Responses held back now, with the moment each was first held, ms. */
  private readonly held = new Map<Cuttable, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(options: ReadGuardOptions) {
    this.options = options;
  }

  /** The response's client stopped reading (a write returned false): its wait starts now, unless it already had. */
  hold(res: Cuttable): void {
    if (this.held.has(res)) return;
    this.held.set(res, this.options.now());
    if (this.timer === null) {
      this.timer = setInterval(this.check, Math.max(1, Math.min(250, this.options.graceMs / 4)));
      this.timer.unref();
    }
  }

  /** The response drained, finished or closed: it is not held any more. */
  release(res: Cuttable): void {
    if (!this.held.delete(res) || this.held.size > 0 || this.timer === null) return;
    clearInterval(this.timer);
    this.timer = null;
  }

  /** Stops the timer; held responses are forgotten (the server is shutting down). */
  destroy(): void {
    this.held.clear();
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Responses held back now (for tests and stats). */
  get size(): number {
    return this.held.size;
  }

  private readonly check = (): void => {
    if (!this.options.contended()) return;
    const cutBefore = this.options.now() - this.options.graceMs;
    for (const [res, sinceMs] of this.held) {
      if (sinceMs > cutBefore) continue;
      this.release(res);
      this.options.onCut();
      res.destroy();
    }
  };
}
