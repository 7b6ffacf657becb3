/**
 * Reads the fleet's rolling windows of baseline and canary from Redis and ingests what is new into incremental
 * {@link FleetWindows}. A pod whose slot is late is absent from that read and merged by a later one; a field that
 * fails to decode is skipped, counted once, and never decoded again.
 *
 * Each read costs two pipelines: HLEN of every slot hash of the window, then a fetch (Lua, {@link SLOT_FETCH}) of only
 * those whose field count changed since this reader last fetched them. Slot hashes only grow (one field per pod, written once) until they
 * expire, so in steady state a read transfers the newest slots, not the whole window: at 1000 pods x 12 slots that is
 * about 1.4 MB instead of 16.6 MB per evaluation (bench/fleet-scale.ts).
 *
 * Decoding and merging run on the sidecar's event loop, next to the proxy: a read yields to the loop whenever it
 * has worked for {@link FleetReaderOptions.sliceMs} in a row, so that proxied requests wait at most about that long
 * even when a first read of 1000 pods takes seconds.
 *
 * Redis is shared, so what it holds may be hostile: a key of another type at a slot's name (a list) is skipped,
 * counted in {@link FleetReader.keysSkippedTotal} and logged once, and the rest of the window is read as usual (so is
 * a slot hash with more than {@link MAX_PODS_PER_SLOT} fields, which no fleet writes); a
 * field longer than {@link MAX_SLOT_PAYLOAD_BYTES} never leaves Redis (the fetch script returns its length instead)
 * and counts as one corrupt payload.
 */
import { FleetWindows } from '../core/fleet-windows.ts';
import type { ServiceKeys } from '../core/keys.ts';
import type { WindowSource } from '../core/ports.ts';
import type { WindowRead } from '../core/window.ts';
import type { Redis } from './redis-client.ts';
import { CanaryGateError, ErrorCodes } from '../core/errors.ts';
import { MAX_SLOT_PAYLOAD_BYTES } from '../core/slot-payload.ts';
import type { Logger } from '../config/logger.ts';

/**
 * Fetches one slot hash without letting anything oversized out of Redis. KEYS: the slot hash; ARGV: the longest value
 * returned, bytes. Returns `[field, value, ...]`, where a value longer than the limit is replaced by its length (an
 * integer) and a field name longer than 256 bytes by its first 256; an absent key is `[]`; a key of another type is its
 * type's name (a string), so that one hostile key cannot fail the whole pipeline with WRONGTYPE.
 */
export const SLOT_FETCH = `
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then return {} end
if kind ~= 'hash' then return kind end
local limit = tonumber(ARGV[1])
local out = {}
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  local size = redis.call('HSTRLEN', KEYS[1], field)
  out[#out + 1] = string.sub(field, 1, 256)
  if size <= limit and #field <= 256 then out[#out + 1] = redis.call('HGET', KEYS[1], field) else out[#out + 1] = size end
end
return out
`;

/** Most fields (pods) one slot hash may hold; a hash with more is skipped like a key of another type. */
export const MAX_PODS_PER_SLOT = 10_000;

type FetchCommands = { cgSlotFetch(key: string, limit: number): Promise<unknown> };

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
  /** Where a skipped key is reported (once per key). Default: nowhere. */
  readonly logger?: Logger;
}

const DEFAULT_SLICE_MS = 10;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class FleetReader implements WindowSource {
  private readonly redis: Redis & FetchCommands;
  private readonly keys: ServiceKeys;
  private readonly logger: Logger | null;
  /** Slot keys of another type than a hash, with their slot index, each counted and logged once while in the window. */
  private readonly skippedKeys = new Map<string, number>();
  private keysSkipped = 0;
  private readonly slots: number;
  private readonly windows: FleetWindows;
  /** Slot key -> its field count when this reader last fetched it (SLOT_FETCH); a key whose HLEN still says so is skipped. */
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
    if (!('cgSlotFetch' in redis)) redis.defineCommand('cgSlotFetch', { numberOfKeys: 1, lua: SLOT_FETCH });
    this.redis = redis as Redis & FetchCommands;
    this.logger = options.logger ?? null;
    this.sliceMs = options.sliceMs ?? DEFAULT_SLICE_MS;
    this.now = options.now ?? (() => performance.now());
    this.yieldToLoop = options.yieldToLoop ?? nextTurn;
    this.keys = keys;
    this.slots = slots;
    this.baselineVersion = versions.baseline;
    this.canaryVersion = versions.canary;
    this.windows = new FleetWindows([versions.baseline, versions.canary], slotMs, slots);
  }

  /** Slot keys skipped since start because they held another type than a hash (each counted once while in the window). */
  get keysSkippedTotal(): number {
    return this.keysSkipped;
  }

  /** Corrupt payloads skipped since start. */
  get corruptTotal(): number {
    return this.windows.corruptTotal;
  }

  /**
   * Reads slots [lastSlotIndex - slots + 1, lastSlotIndex] of both versions: HLEN of each (one pipeline), then
   * {@link SLOT_FETCH} of each whose field count changed since it was last fetched (a second pipeline, skipped when none
   * did). A key of another type is skipped, never the read. Yields to the event loop every `sliceMs` of decoding.
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
    for (const [key, index] of this.skippedKeys) if (index < first) this.skippedKeys.delete(key);

    const lengths = await this.exec((pipeline) => {
      for (const c of candidates) pipeline.hlen(c.key);
    });
    const plan = candidates.filter((c, i) => !this.skipHostile(c, lengths[i]) && this.fetchedLength.get(c.key)?.length !== lengths[i]);
    const replies =
      plan.length === 0
        ? []
        : await this.exec((pipeline) => {
            for (const c of plan) pipeline.cgSlotFetch(c.key, MAX_SLOT_PAYLOAD_BYTES);
          });
    if (this.destroyed) throw new CanaryGateError(ErrorCodes.REDIS_READ_FAILED, 'FleetReader destroyed during a read');
    let merged = 0;
    let corrupt = 0;
    let sliceStartMs = this.now();
    for (let i = 0; i < replies.length; i++) {
      const { version, index, key } = plan[i]!;
      const reply = replies[i];
      if (!Array.isArray(reply)) {
        this.skipHostile(plan[i]!, reply instanceof Error ? reply : new Error(`WRONGTYPE ${String(reply)}`));
        continue;
      }
      // What the fetch returned, not what HLEN said: a field written between the two is fetched again next time.
      this.fetchedLength.set(key, { index, length: reply.length / 2 });
      for (let f = 0; f + 1 < reply.length; f += 2) {
        if (this.now() - sliceStartMs >= this.sliceMs) {
          await this.yieldToLoop();
          if (this.destroyed) throw new CanaryGateError(ErrorCodes.REDIS_READ_FAILED, 'FleetReader destroyed during a read');
          sliceStartMs = this.now();
        }
        const pod = String(reply[f]);
        const text = reply[f + 1];
        // A number: the value's length, too long to be a payload; Redis kept it.
        const ingested =
          typeof text === 'string' ? this.windows.ingest(version, index, pod, text) : this.windows.reject(version, index, pod);
        if (ingested === 'corrupt') corrupt++;
        if (ingested !== 'merged') continue;
        merged++;
        this.tap?.(version, index, pod, text);
      }
    }
    return { ...this.windows.read(this.baselineVersion, this.canaryVersion), merged, corrupt };
  }

  /**
   * When `reply` (HLEN's, or the fetch's) is a WRONGTYPE error (another client wrote something else than a hash at a
   * slot's name) or a field count past {@link MAX_PODS_PER_SLOT}: counts the key and logs it, once while it stays in
   * the window, and answers true (skip it).
   */
  private skipHostile(c: { index: number; key: string }, reply: unknown): boolean {
    const wrongType = reply instanceof Error && reply.message.startsWith('WRONGTYPE');
    const tooMany = typeof reply === 'number' && reply > MAX_PODS_PER_SLOT;
    if (!wrongType && !tooMany) return false;
    if (!this.skippedKeys.has(c.key)) {
      this.skippedKeys.set(c.key, c.index);
      this.keysSkipped++;
      this.logger?.warn(
        { key: c.key, fields: tooMany ? reply : undefined },
        tooMany
          ? `fleet read: skipping a slot hash with more than ${MAX_PODS_PER_SLOT} fields (written by another client)`
          : 'fleet read: skipping a slot key that is not a hash (written by another client)',
      );
    }
    return true;
  }

  /**
   * Runs commands in one pipeline; resolves to their replies in order, a WRONGTYPE error as the error itself (the
   * caller skips that key).
   * @param fill adds the commands to the pipeline
   * @throws any other command's error (a connection or a timeout: the read fails)
   */
  private async exec(fill: (pipeline: ReturnType<Redis['pipeline']> & FetchCommands) => void): Promise<unknown[]> {
    const pipeline = this.redis.pipeline() as ReturnType<Redis['pipeline']> & FetchCommands;
    fill(pipeline);
    const replies = await pipeline.exec();
    if (replies === null) throw new CanaryGateError(ErrorCodes.REDIS_READ_FAILED, 'pipeline aborted');
    return replies.map(([err, value]) => {
      if (err?.message.startsWith('WRONGTYPE')) return err;
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
