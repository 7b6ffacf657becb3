/**
 * Limits how fast bearer tokens can be guessed on the admin port, and how many log lines the guessing costs.
 *
 * Each client address has a bucket of {@link AuthLimiterOptions.burst} failed attempts, refilled at
 * {@link AuthLimiterOptions.perSecond}; all addresses together share one of ten times that, so many addresses do not
 * multiply the rate. An empty bucket answers 429 before the token is even compared. Refusals are logged as a sample:
 * the first one, then at most one line per `logEveryMs` carrying how many were left out.
 *
 * Written here rather than taken from a library: the rate-limit packages on npm are HTTP-framework middleware or
 * stores for a shared backend; this is two token buckets and a map, and keeps the sidecar image's packages few.
 */

export interface AuthLimiterOptions {
  /** Failed attempts one address may make at once. Default 10. */
  readonly burst?: number;
  /** Failed attempts per second one address gets back. Default 1. */
  readonly perSecond?: number;
  /** Shortest gap between two logged refusals, ms. Default 10 000. */
  readonly logEveryMs?: number;
  /** Monotonic clock, ms. Default `performance.now`. */
  readonly now?: () => number;
}

interface Bucket {
  tokens: number;
  atMs: number;
}

/** Most addresses tracked at once; the fullest are forgotten first (a full bucket is the same as none). */
const MAX_ADDRESSES = 10_000;

export class AuthLimiter {
  private readonly burst: number;
  private readonly perSecond: number;
  private readonly logEveryMs: number;
  private readonly now: () => number;
  private readonly buckets = new Map<string, Bucket>();
  private readonly all: Bucket;
  private lastLogMs = Number.NEGATIVE_INFINITY;
  private unlogged = 0;

  constructor(options: AuthLimiterOptions = {}) {
    this.burst = options.burst ?? 10;
    this.perSecond = options.perSecond ?? 1;
    this.logEveryMs = options.logEveryMs ?? 10_000;
    this.now = options.now ?? (() => performance.now());
    this.all = { tokens: this.burst * 10, atMs: this.now() };
  }

  /** Seconds until `remote` may try again (0: it may now). */
  retryAfterS(remote: string): number {
    const nowMs = this.now();
    const own = this.refill(this.buckets.get(remote), this.burst, nowMs);
    const all = this.refill(this.all, this.burst * 10, nowMs);
    const lacking = Math.max(own < 1 ? 1 - own : 0, all < 1 ? 1 - all : 0);
    return lacking === 0 ? 0 : Math.ceil(lacking / this.perSecond);
  }

  /** Takes one failed attempt of `remote` out of its bucket and the shared one. */
  failed(remote: string): void {
    const nowMs = this.now();
    const bucket = this.buckets.get(remote) ?? { tokens: this.burst, atMs: nowMs };
    bucket.tokens = this.refill(bucket, this.burst, nowMs) - 1;
    bucket.atMs = nowMs;
    this.buckets.delete(remote);
    this.buckets.set(remote, bucket);
    this.all.tokens = this.refill(this.all, this.burst * 10, nowMs) - 1;
    this.all.atMs = nowMs;
    if (this.buckets.size > MAX_ADDRESSES) this.buckets.delete(this.buckets.keys().next().value!);
  }

  /**
   * Whether to log this refusal now: the first one, then one per `logEveryMs`.
   * @returns null to stay silent, else how many refusals went unlogged before this one
   */
  sample(): number | null {
    const nowMs = this.now();
    if (nowMs - this.lastLogMs < this.logEveryMs) {
      this.unlogged++;
      return null;
    }
    const skipped = this.unlogged;
    this.lastLogMs = nowMs;
    this.unlogged = 0;
    return skipped;
  }

  private refill(bucket: Bucket | undefined, capacity: number, nowMs: number): number {
    if (bucket === undefined) return capacity;
    return Math.min(capacity, bucket.tokens + ((nowMs - bucket.atMs) / 1000) * this.perSecond);
  }
}
