/**
 * Watches a request body while undici streams it upstream, to tell the client's time from the app's:
 * - undici pauses the body when the upstream socket is full (the app reads slowly): that time is the app's;
 * - while the body flows (undici is ready for more) and the client has not sent everything, the proxy waits for the
 *   client: that time is the client's, and it is taken out of the latency the gate judges.
 * It is also the slow-upload guard: a body that sends nothing for `timeoutMs` of flowing time, or that falls below
 * `minRate` bytes per second after a grace of `timeoutMs`, is reported as too slow (Apache mod_reqtimeout's
 * `body=...,MinRate=...`). While other requests wait for an upstream connection (`contended`), the grace shrinks to
 * at most {@link CONTENDED_GRACE_MS}: a trickling body then loses its connection within about a second instead of
 * holding it past the others' `queueTimeout` (a pool held by trickling clients would otherwise turn every healthy
 * request away with 503). HTTP/1.1: bytes are read from the client socket's counter, so the watch never adds a 'data'
 * listener (that would switch the body to flowing mode before undici reads it). HTTP/2 (`perStream`): the socket is
 * the session's, shared by its streams, so a stalled stream would be carried by its neighbours' bytes; the watch counts
 * the stream's own body bytes instead, with a 'data' listener added only once undici's reading has made the body
 * flow (its first 'resume'), so no byte is emitted before undici listens.
 */
import type { IncomingMessage } from 'node:http';

export interface UploadWatchOptions {
  /** High-resolution clock, ms. */
  readonly now: () => number;
  /** Longest flowing time with no new byte, ms; 0: no guard at all. */
  readonly timeoutMs: number;
  /** Slowest body, bytes per second, after the grace of `timeoutMs`; 0: no rate check. */
  readonly minRate: number;
  /** Called once when the client is too slow; the watch has stopped by then. */
  readonly onTooSlow: () => void;
  /** Whether other requests wait for an upstream connection now (default: never). */
  readonly contended?: () => boolean;
  /**
   * Count the body's own bytes rather than its socket's (default false): for an HTTP/2 stream, whose socket carries
   * every stream of its session. Costs one listener call per body chunk.
   */
  readonly perStream?: boolean;
}

/** The rate check's grace while others wait for an upstream connection, ms (at most `timeoutMs`). */
export const CONTENDED_GRACE_MS = 1000;

/** How often the guard looks at the byte counter, at most; finer for short timeouts (tests). */
const MAX_CHECK_MS = 1000;

export class UploadWatch {
  private readonly req: IncomingMessage;
  private readonly options: UploadWatchOptions;
  /** Flowing time of intervals already closed, ms. */
  private flowedMs = 0;
  /** Start of the current flowing interval, or -1 while paused (or before undici reads). */
  private flowingSince = -1;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly bytesAtStart: number;
  private lastBytes = 0;
  /** Flowing time at which the byte counter last moved, ms. */
  private lastProgressMs = 0;

  /** Body bytes counted by the 'data' listener (perStream), or -1 while it is not listening yet. */
  private streamBytes = -1;
  private readonly onData = (chunk: Buffer): void => {
    this.streamBytes += chunk.length;
  };
  private readonly onResume = (): void => {
    if (this.flowingSince < 0) this.flowingSince = this.options.now();
    if (this.options.perStream === true && this.streamBytes < 0 && !this.stopped) {
      this.streamBytes = 0;
      this.req.on('data', this.onData);
    }
  };
  private readonly onPause = (): void => {
    if (this.flowingSince >= 0) {
      this.flowedMs += this.options.now() - this.flowingSince;
      this.flowingSince = -1;
    }
  };
  private readonly onEnd = (): void => this.stop();
  private readonly check = (): void => {
    const flowing = this.flowingMs(this.options.now());
    const bytes = this.bytes();
    if (bytes !== this.lastBytes) {
      this.lastBytes = bytes;
      this.lastProgressMs = flowing;
    }
    const { timeoutMs, minRate, contended } = this.options;
    const idle = flowing - this.lastProgressMs >= timeoutMs;
    const graceMs = contended?.() ? Math.min(timeoutMs, CONTENDED_GRACE_MS) : timeoutMs;
    const tooSlow = minRate > 0 && flowing > graceMs + (bytes * 1000) / minRate;
    if (idle || tooSlow) {
      this.stop();
      this.options.onTooSlow();
    }
  };

  /** Starts watching `req`, whose body undici is about to read. */
  constructor(req: IncomingMessage, options: UploadWatchOptions) {
    this.req = req;
    this.options = options;
    this.bytesAtStart = options.perStream === true ? 0 : req.socket.bytesRead;
    req.on('resume', this.onResume);
    req.on('pause', this.onPause);
    req.once('end', this.onEnd);
    if (options.timeoutMs > 0) {
      const every = Math.max(1, Math.min(MAX_CHECK_MS, options.timeoutMs / 4));
      this.timer = setInterval(this.check, every);
      this.timer.unref();
    }
  }

  /** Flowing time until `atMs`: how long the proxy waited for the client's bytes, ms. */
  flowingMs(atMs: number): number {
    return this.flowingSince < 0 ? this.flowedMs : this.flowedMs + Math.max(0, atMs - this.flowingSince);
  }

  /** Stops the guard and the listeners (at the body's end by itself); `flowingMs` keeps its last value. Safe to call again. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.onPause();
    if (this.timer !== null) clearInterval(this.timer);
    this.req.off('resume', this.onResume);
    this.req.off('pause', this.onPause);
    this.req.off('end', this.onEnd);
    this.req.off('data', this.onData);
  }

  private bytes(): number {
    if (this.options.perStream === true) return Math.max(0, this.streamBytes);
    return this.req.socket === null ? this.lastBytes : this.req.socket.bytesRead - this.bytesAtStart;
  }
}
