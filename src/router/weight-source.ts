/**
 * The canary's weight as the router follows it: the flag (config flag.key, the canary's traffic percentage) read from
 * Redis at start, every poll interval, and at once on every event the gate publishes on the service's channel
 * (`<prefix>:{<service>}:events`: rollback, reset). Events make a rollback reach the router in one round trip; the
 * poll covers a flag set by hand or by another tool, and events missed while the subscription was down.
 *
 * Fail open (ARCHITECTURE.md, "Fail open on the traffic path"): when a read fails, the last known weight stays and
 * `stale` is true until a read succeeds again. Before the first successful read the weight is 0 (every request to
 * the baseline) and stale. A flag that is unset or not a number 0..100 reads as 0, as the gate reads it: no rollout
 * is under way.
 *
 * Reads run one at a time; a read asked for while one is under way runs once after it (a burst of events costs at
 * most one more read), so the last event always leads to a read that started after it.
 */
import type { Logger } from '../config/logger.ts';
import type { FlagStore } from '../core/ports.ts';
import type { Redis } from '../fleet/redis-client.ts';

/** What made the router read the flag. */
export type ReadTrigger = 'poll' | 'event';

export interface WeightSourceStatus {
  /** The weight requests are routed by, percent 0..100. */
  readonly weightPercent: number;
  /** True while the last read failed (or none has succeeded yet): the weight may be out of date. */
  readonly stale: boolean;
  /** Reads started since start, by trigger (the first read counts as a poll). */
  readonly reads: Readonly<Record<ReadTrigger, number>>;
  /** Reads that failed (Redis unreachable, a timeout). */
  readonly readFailures: number;
  /** When the last read succeeded, ms since the epoch; null before the first. */
  readonly lastReadAtMs: number | null;
  /** The last failed read's message, cleared by the next success. */
  readonly lastError: string | null;
  /** Whether the event subscription is in place. */
  readonly subscribed: boolean;
}

export interface WeightSourceOptions {
  /** Reads the flag as a percentage (RedisFlagStore.flagPercent). */
  readonly flags: Pick<FlagStore, 'flagPercent'>;
  /** A client of its own for the subscription (a subscribed ioredis client can do nothing else). */
  readonly subscriber: Redis;
  /** The gate's event channel (ServiceKeys.events). */
  readonly channel: string;
  /** Poll interval, ms (config router.pollInterval). */
  readonly pollMs: number;
  readonly logger: Logger;
  /** Wall clock, ms since the epoch (for lastReadAtMs). Default Date.now. */
  readonly clock?: () => number;
}

export class WeightSource {
  private readonly options: WeightSourceOptions;
  private readonly clock: () => number;
  private weight = 0;
  private fresh = false;
  private readonly reads: Record<ReadTrigger, number> = { poll: 0, event: 0 };
  private readFailures = 0;
  private lastReadAtMs: number | null = null;
  private lastError: string | null = null;
  private subscribed = false;
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(options: WeightSourceOptions) {
    this.options = options;
    this.clock = options.clock ?? Date.now;
  }

  /** The weight to route by, percent 0..100. */
  get weightPercent(): number {
    return this.weight;
  }

  status(): WeightSourceStatus {
    return {
      weightPercent: this.weight,
      stale: !this.fresh,
      reads: { ...this.reads },
      readFailures: this.readFailures,
      lastReadAtMs: this.lastReadAtMs,
      lastError: this.lastError,
      subscribed: this.subscribed,
    };
  }

  /** Subscribes to the channel (again after every reconnection), reads the flag once, then polls. Never rejects. */
  async start(): Promise<void> {
    const { subscriber, channel, logger } = this.options;
    subscriber.on('message', (from: string) => {
      if (from === channel) void this.refresh('event');
    });
    const subscribe = (): void => {
      subscriber.subscribe(channel).then(
        () => {
          this.subscribed = true;
        },
        (err: Error) =>
          logger.warn({ err: err.message, channel }, 'cannot subscribe to the gate events; following the flag by polling only'),
      );
    };
    subscriber.on('ready', subscribe);
    subscriber.on('close', () => {
      this.subscribed = false;
    });
    if (subscriber.status === 'ready') subscribe();
    await this.refresh('poll');
    this.schedule();
  }

  /** Reads the flag now (after the read under way, if any). Never rejects. */
  refresh(trigger: ReadTrigger): Promise<void> {
    if (this.queued !== null) return this.queued;
    if (this.running === null) return (this.running = this.read(trigger));
    this.queued = this.running.then(() => {
      this.queued = null;
      return (this.running = this.read(trigger));
    });
    return this.queued;
  }

  /** Stops polling; the subscriber client is the caller's to close. */
  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.refresh('poll').then(() => this.schedule()), this.options.pollMs);
  }

  private async read(trigger: ReadTrigger): Promise<void> {
    const { logger } = this.options;
    this.reads[trigger]++;
    try {
      const percent = (await this.options.flags.flagPercent()) ?? 0;
      if (this.lastReadAtMs === null) {
        logger.info({ weightPercent: percent, trigger }, 'flag read; following it');
      } else {
        if (!this.fresh) logger.info({ weightPercent: percent }, 'flag readable again; following it');
        if (percent !== this.weight) logger.info({ from: this.weight, to: percent, trigger }, 'canary weight changed');
      }
      this.weight = percent;
      this.fresh = true;
      this.lastReadAtMs = this.clock();
      this.lastError = null;
    } catch (err) {
      this.readFailures++;
      this.lastError = (err as Error).message;
      if (this.fresh || this.readFailures === 1)
        logger.warn({ err: this.lastError, weightPercent: this.weight }, 'cannot read the flag; keeping the last known weight');
      this.fresh = false;
    } finally {
      this.running = null;
    }
  }
}
