/**
 * The evaluator lease in memory, as RedisLease keeps it in Redis (src/fleet/redis-lease.ts): one holder at a time
 * for its TTL on the given clock, a fencing token that grows with every new holder, renewal by the holder only.
 */
import type { Lease } from '../../src/core/ports.ts';

export class MemoryLease implements Lease {
  /** false: every call rejects, as with Redis unreachable. */
  reachable = true;
  private current: { holder: string; token: number; expiresMs: number } | null = null;
  private fence = 0;
  private readonly clock: () => number;

  /** @param clock the clock the TTL runs on, ms (the tests' manual clock) */
  constructor(clock: () => number) {
    this.clock = clock;
  }

  async acquire(holder: string, ttlMs: number): Promise<number> {
    const current = this.live();
    if (current === null) {
      this.current = { holder, token: ++this.fence, expiresMs: this.clock() + ttlMs };
      return this.current.token;
    }
    if (current.holder !== holder) return 0;
    current.expiresMs = this.clock() + ttlMs;
    return current.token;
  }

  async release(holder: string): Promise<void> {
    if (this.live()?.holder === holder) this.current = null;
  }

  async holder(): Promise<string | null> {
    return this.live()?.holder ?? null;
  }

  /** The fencing token a fenced write must carry now, or 0 when nobody holds the lease (what the rollback script checks). */
  tokenNow(): number {
    return this.current !== null && this.clock() < this.current.expiresMs ? this.current.token : 0;
  }

  /** Ends the current lease at once, as if it expired (its holder paused longer than the TTL). */
  expire(): void {
    this.current = null;
  }

  /** The lease unless it has expired; rejects while unreachable. */
  private live(): { holder: string; token: number; expiresMs: number } | null {
    if (!this.reachable) throw new Error('lease: connection refused (memory store unreachable)');
    if (this.current !== null && this.clock() >= this.current.expiresMs) this.current = null;
    return this.current;
  }
}
