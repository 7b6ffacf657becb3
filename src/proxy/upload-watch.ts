/**
 * Watches a request body while undici streams it upstream, to tell the client's time from the app's:
 * - undici pauses the body when the upstream socket is full (the app reads slowly): that time is the app's;
 * - while the body flows (undici is ready for more) and the client has not sent everything, the proxy waits for the
 *   client: that time is the client's, and it is taken out of the latency the gate judges.
 */
import type { IncomingMessage } from 'node:http';

export class UploadWatch {
  private readonly req: IncomingMessage;
  private readonly now: () => number;
  /** Flowing time of intervals already closed, ms. */
  private flowedMs = 0;
  /** Start of the current flowing interval, or -1 while paused (or before undici reads). */
  private flowingSince = -1;
  private stopped = false;

  private readonly onResume = (): void => {
    if (this.flowingSince < 0) this.flowingSince = this.now();
  };
  private readonly onPause = (): void => {
    if (this.flowingSince >= 0) {
      this.flowedMs += this.now() - this.flowingSince;
      this.flowingSince = -1;
    }
  };
  private readonly onEnd = (): void => this.stop();

  /**
   * Starts watching `req`, whose body undici is about to read.
   * @param now high-resolution clock, ms
   */
  constructor(req: IncomingMessage, now: () => number) {
    this.req = req;
    this.now = now;
    req.on('resume', this.onResume);
    req.on('pause', this.onPause);
    req.once('end', this.onEnd);
  }

  /** Flowing time until `atMs`: how long the proxy waited for the client's bytes, ms. */
  flowingMs(atMs: number): number {
    return this.flowingSince < 0 ? this.flowedMs : this.flowedMs + Math.max(0, atMs - this.flowingSince);
  }

  /** Stops the listeners (at the body's end by itself); `flowingMs` keeps its last value. Safe to call again. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.onPause();
    this.req.off('resume', this.onResume);
    this.req.off('pause', this.onPause);
    this.req.off('end', this.onEnd);
  }
}
