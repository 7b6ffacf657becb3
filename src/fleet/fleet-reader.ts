/**
 * Reads the fleet's rolling windows of baseline and canary from Redis and ingests what is new into incremental
 * {@link FleetWindows}. A pod whose slot is late is absent from that read and merged by a later one; a field that
 * fails to decode is skipped, counted once, and never decoded again.
 *
 * Each read costs two pipelines: HLEN of every slot hash of the window, then HGETALL of only those whose field count
 * changed since this reader last fetched them. Slot hashes only grow (one field per pod, written once) until they
 * expire, so in steady state a read transfers the newest slots, not the whole window: at 1000 pods x 12 slots that is
 * about 1.4 MB instead of 16.6 MB per evaluation (bench/fleet-scale.ts).
 *
 * Decoding and merging run on the sidecar's event loop, next to the proxy: a read yields to the loop whenever it
 * has worked for {@link FleetReaderOptions.sliceMs} in a row, so that proxied requests wait at most about that long
 * even when a first read of 1000 pods takes seconds.
 */
import { FleetWindows } from '../core/fleet-windows.ts';
import type { ServiceKeys } from '../core/keys.ts';
import type { WindowSource } from '../core/ports.ts';
import type { WindowRead } from '../core/window.ts';
import type { Redis } from './redis-client.ts';
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';

export interface FleetRead extends WindowRead {
  /** Payloads merged by this read (new pod-slots). */
  readonly merged: number;
  /** Corrupt payloads first seen by this read. */
  readonly corrupt: number;
}

export interface FleetReaderOptions {
  /** Longest stretch of decoding and merging before the read yields to the event loop, ms. Default 10. */
  readonly sliceMs?: number;
  /** Monotonic clock, ms. Default `performance.now`. */
  readonly now?: () => number;
  /** Lets the event loop run (pending I/O, such as proxied requests) and resolves. Default: one `setImmediate`. */
  readonly yieldToLoop?: () => Promise<void>;
}

const DEFAULT_SLICE_MS = 10;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class FleetReader implements WindowSource {
  private readonly redis: Redis;
  private readonly keys: ServiceKeys;
  private readonly slots: number;
  private readonly windows: FleetWindows;
  /** Slot key -> its field count when this reader last fetched it (HGETALL); a key whose HLEN still says so is skipped. */
  private readonly fetchedLength = new Map<string, { index: number; length: number }>();
  private readonly baselineVersion: string;
  private readonly canaryVersion: string;
  private readonly sliceMs: number;
  private readonly now: () => number;
  private readonly yieldToLoop: () => Promise<void>;
  private destroyed = false;

  /** Called with every payload this reader merges, as stored (`canary-gate record` writes them to a recording). */
  tap: ((version: string, slotIndex: number, pod: string, payload: string) => void) | null = null;

  constructor(
    redis: Redis,
    keys: ServiceKeys,
    versions: { baseline: string; canary: string },
    slotMs: number,
    slots: number,
    options: FleetReaderOptions = {},
  ) {
    this.redis = redis;
    this.sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS;
    this.now = options.now ?? (() => performance.now());
    this.yieldToLoop = options.yieldToLoop ?? nextTurn;
    this.keys = keys;
    this.slots = slots;
    this.baselineVersion = versions.baseline;
    this.canaryVersion = versions.canary;
    this.windows = new FleetWindows([versions.baseline, versions.canary], slotMs, slots);
  }

  /** Corrupt payloads skipped since start. */
  get corruptTotal(): number {
    return this.windows.corruptTotal;
  }

  /**
   * Reads slots [lastSlotIndex - slots + 1, lastSlotIndex] of both versions: HLEN of each (one pipeline), then
   * HGETALL of each whose field count changed since it was last fetched (a second pipeline, skipped when none did).
   * Yields to the event loop every `sliceMs` of decoding (see the class).
   * @throws the Redis error when a pipeline cannot run, or an Error when the reader is destroyed during the read
   *   (the caller reports an inconclusive evaluation)
   */
  async read(lastSlotIndex: number): Promise<FleetRead> {
    const first = lastSlotIndex - this.slots + 1;
    this.windows.advanceTo(lastSlotIndex);
    const candidates: Array<{ version: string; index: number; key: string }> = [];
    for (const version of new Set([this.baselineVersion, this.canaryVersion])) {
      for (let index = first; index <= lastSlotIndex; index++) candidates.push({ version, index, key: this.keys.slot(version, index) });
    }
    for (const [key, seen] of this.fetchedLength) if (seen.index < first) this.fetchedLength.delete(key);

    const lengths = await this.exec(candidates.map((c) => ['hlen', c.key]));
    const plan = candidates.filter((c, i) => this.fetchedLength.get(c.key)?.length !== lengths[i]);
    const replies = plan.length === 0 ? [] : await this.exec(plan.map((c) => ['hgetall', c.key]));
    if (this.destroyed) throw new CanaryGateError(ErrorCodes.REDIS_READ_FAILED, 'FleetReader destroyed during a read');
    let merged = 0;
    let corrupt = 0;
    let sliceStartMs = this.now();
    for (let i = 0; i < replies.length; i++) {
      const { version, index, key } = plan[i]!;
      const fields = replies[i] as Record<string, string>;
      // What HGETALL returned, not what HLEN said: a field written between the two is fetched again next time.
      this.fetchedLength.set(key, { index, length: Object.keys(fields).length });
      for (const [pod, text] of Object.entries(fields)) {
        if (this.now() - sliceStartMs >= this.sliceMs) {
          await this.yieldToLoop();
          if (this.destroyed) throw new CanaryGateError(ErrorCodes.REDIS_READ_FAILED, 'FleetReader destroyed during a read');
          sliceStartMs = this.now();
        }
        const ingested = this.windows.ingest(version, index, pod, text);
        if (ingested === 'corrupt') corrupt++;
        if (ingested !== 'merged') continue;
        merged++;
        this.tap?.(version, index, pod, text);
      }
    }
    return { ...this.windows.read(this.baselineVersion, this.canaryVersion), merged, corrupt };
  }

  /** Runs commands in one pipeline; resolves to their replies in order. @throws the first command's error */
  private async exec(commands: Array<[string, string]>): Promise<unknown[]> {
    const replies = await this.redis.pipeline(commands).exec();
    if (replies === null) throw new CanaryGateError(ErrorCodes.REDIS_READ_FAILED, 'pipeline aborted');
    return replies.map(([err, value]) => {
      if (err) throw err;
      return value;
    });
  }

  /** Frees the windows' histograms; a read in progress rejects at its next yield. */
  destroy(): void {
    this.destroyed = true;
    this.windows.destroy();
  }
}
