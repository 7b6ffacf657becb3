/**
 * The notifier: takes the gate's transitions from the evaluator (the lease holder) and delivers them to every
 * configured sink, off the evaluation path.
 *
 * - `notify()` returns at once and never throws: it renders each sink's request and queues it; nothing waits for
 *   the network (ARCHITECTURE.md, "Never block a request on telemetry", holds for evaluations too).
 * - One bounded queue and one worker per sink: a sink that fails or hangs delays only its own notifications. A full
 *   queue drops its oldest notification, counted (`queue_full`).
 * - At least once: an attempt that fails with a retryable outcome (no response, a timeout, 408, 429, 5xx) is tried
 *   again after a capped exponential backoff with full jitter, up to `maxAttempts`; every attempt carries the header
 *   `idempotency-key: <notification id>`, the same on every retry, so a receiver can drop a repeat. The same
 *   transition announced twice (same id) is queued once.
 * - A failure is counted and logged, never thrown; no log line carries a sink's URL or key (see `redact`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, type Dispatcher } from 'undici';
import type { Logger } from '../config/logger.ts';
import type { GateEvent } from '../core/transitions.ts';
import { notificationOf, type Notification } from './notification.ts';
import { postJson } from './post.ts';
import { backoffMs } from './retry.ts';
import type { Sink, SinkRequest } from './sink.ts';

/** Every default of the notifier in one place. */
export const NOTIFIER_DEFAULTS = {
  /** Notifications waiting per sink; past it the oldest is dropped. */
  queueSize: 100,
  /** One attempt's bound, ms: connecting, the response head and its body. */
  timeoutMs: 5000,
  /** Attempts per notification and sink, the first included. */
  maxAttempts: 8,
  /** The first retry waits up to this, ms; each further one up to twice as long as the one before... */
  backoffBaseMs: 1000,
  /** ...up to this, ms. With the defaults a notification is given up about 2 min after its first attempt at the latest. */
  backoffCapMs: 30_000,
  /** close() keeps delivering for this long, ms, then drops what is left. */
  drainMs: 2000,
  /** Notification ids remembered to queue a repeated transition once. */
  rememberIds: 256,
} as const;

export interface NotifierOptions {
  readonly queueSize: number;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly backoffBaseMs: number;
  readonly backoffCapMs: number;
  readonly drainMs: number;
  readonly rememberIds: number;
  /** Uniform in [0, 1): the jitter's source. Default Math.random. */
  readonly random: () => number;
}

/** Why a notification was not delivered to a sink. */
export type DropReason = 'queue_full' | 'rejected' | 'retries_exhausted' | 'shutdown';
export const DROP_REASONS: readonly DropReason[] = ['queue_full', 'rejected', 'retries_exhausted', 'shutdown'];

/** One sink's counters since start, as the metrics read them. */
export interface SinkStats {
  readonly sink: string;
  /** Waiting in the queue, not counting the one being delivered. */
  readonly queued: number;
  /** Notifications delivered (a 2xx answer). */
  readonly sent: number;
  /** Attempts that failed (each is logged). */
  readonly failed: number;
  /** Notifications given up, by reason. */
  readonly dropped: Readonly<Record<DropReason, number>>;
}

interface Queued {
  readonly n: Notification;
  readonly request: SinkRequest;
}

class SinkQueue {
  readonly sink: Sink;
  readonly items: Queued[] = [];
  worker: Promise<void> | null = null;
  sent = 0;
  failed = 0;
  readonly dropped: Record<DropReason, number> = { queue_full: 0, rejected: 0, retries_exhausted: 0, shutdown: 0 };

  constructor(sink: Sink) {
    this.sink = sink;
  }
}

/** Replaces every secret (URL, key) in `text` with `[redacted]`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length > 0) out = out.split(secret).join('[redacted]');
  return out;
}

export class Notifier {
  private readonly queues: SinkQueue[];
  private readonly service: string;
  private readonly pod: string;
  private readonly logger: Logger;
  private readonly options: NotifierOptions;
  private readonly secrets: readonly string[];
  private readonly dispatcher: Dispatcher;
  private readonly stop = new AbortController();
  private readonly seen = new Set<string>();
  private closing = false;

  /**
   * @param sinks where notifications go; none: notify() does nothing
   * @param where the gated service and this sidecar's pod, carried in every notification
   */
  constructor(sinks: readonly Sink[], where: { service: string; pod: string }, logger: Logger, options: Partial<NotifierOptions> = {}) {
    this.queues = sinks.map((s) => new SinkQueue(s));
    this.service = where.service;
    this.pod = where.pod;
    this.logger = logger;
    this.options = { ...NOTIFIER_DEFAULTS, random: Math.random, ...options };
    this.secrets = sinks.flatMap((s) => s.secrets);
    this.dispatcher = new Agent({ connect: { timeout: this.options.timeoutMs } });
  }

  /** The configured sinks' names. */
  get sinks(): readonly string[] {
    return this.queues.map((q) => q.sink.name);
  }

  /** Queues a transition for every sink that takes it. Returns at once; never throws. */
  notify(event: GateEvent): void {
    if (this.closing || this.queues.length === 0) return;
    try {
      const n = notificationOf(this.service, this.pod, event);
      if (this.seen.has(n.id)) return;
      this.seen.add(n.id);
      if (this.seen.size > this.options.rememberIds) this.seen.delete(this.seen.values().next().value!);
      for (const q of this.queues) this.enqueue(q, n);
    } catch (err) {
      this.logger.error({ err: this.redact((err as Error).message), kind: event.kind }, 'notification not queued');
    }
  }

  private enqueue(q: SinkQueue, n: Notification): void {
    let request: SinkRequest | null;
    try {
      request = q.sink.render(n);
    } catch (err) {
      q.failed++;
      q.dropped.rejected++;
      this.logger.error(
        { sink: q.sink.name, id: n.id, kind: n.event.kind, err: this.redact((err as Error).message) },
        'notification could not be rendered; dropped',
      );
      return;
    }
    if (request === null) return;
    if (q.items.length >= this.options.queueSize) {
      const oldest = q.items.shift()!;
      q.dropped.queue_full++;
      this.logger.warn(
        { sink: q.sink.name, id: oldest.n.id, kind: oldest.n.event.kind, queueSize: this.options.queueSize },
        'notification queue full; oldest dropped',
      );
    }
    q.items.push({ n, request });
    this.startWorker(q);
  }

  /** Starts the sink's worker unless it runs; one queued between its last look and its end starts it again. */
  private startWorker(q: SinkQueue): void {
    if (q.worker !== null) return;
    q.worker = this.drain(q).finally(() => {
      q.worker = null;
      if (q.items.length > 0 && !this.stop.signal.aborted) this.startWorker(q);
    });
  }

  /** Delivers a sink's queue in order, one notification at a time, until it is empty or the notifier stops. */
  private async drain(q: SinkQueue): Promise<void> {
    while (!this.stop.signal.aborted) {
      const item = q.items.shift();
      if (item === undefined) return;
      await this.deliver(q, item);
    }
  }

  private async deliver(q: SinkQueue, { n, request }: Queued): Promise<void> {
    const o = this.options;
    const log = { sink: q.sink.name, id: n.id, kind: n.event.kind };
    for (let attempt = 1; ; attempt++) {
      const result = await postJson(this.dispatcher, request.url, request.body, { 'idempotency-key': n.id }, o.timeoutMs, this.stop.signal);
      if (result.ok) {
        q.sent++;
        this.logger.info({ ...log, attempt, status: result.status }, 'notification sent');
        return;
      }
      if (this.stop.signal.aborted) {
        q.dropped.shutdown++;
        return;
      }
      q.failed++;
      const giveUp = !result.retry || attempt >= o.maxAttempts;
      const fields = { ...log, attempt, status: result.status, err: this.redact(result.error) };
      if (giveUp) {
        q.dropped[result.retry ? 'retries_exhausted' : 'rejected']++;
        this.logger.error(fields, 'notification failed; given up');
        return;
      }
      this.logger.warn(fields, 'notification failed; will retry');
      try {
        await sleep(backoffMs(attempt, o.backoffBaseMs, o.backoffCapMs, o.random), undefined, { signal: this.stop.signal });
      } catch {
        q.dropped.shutdown++;
        return;
      }
    }
  }

  private redact(text: string): string {
    return redact(text, this.secrets);
  }

  /** Each sink's counters. */
  stats(): SinkStats[] {
    return this.queues.map((q) => ({
      sink: q.sink.name,
      queued: q.items.length,
      sent: q.sent,
      failed: q.failed,
      dropped: { ...q.dropped },
    }));
  }

  /** Resolves when every queue is empty and nothing is being delivered (tests; close() uses it with a deadline). */
  async idle(): Promise<void> {
    while (this.queues.some((q) => q.worker !== null)) await Promise.all(this.queues.map((q) => q.worker));
  }

  /** Stops taking notifications, keeps delivering for up to `drainMs`, then drops what is left (counted). */
  async close(drainMs = this.options.drainMs): Promise<void> {
    this.closing = true;
    const deadline = new AbortController();
    await Promise.race([this.idle(), sleep(drainMs, undefined, { signal: deadline.signal }).catch(() => undefined)]);
    deadline.abort();
    await this.destroy();
  }

  /** Stops at once: aborts what is in flight, drops what is queued (counted as `shutdown`). */
  async destroy(): Promise<void> {
    this.closing = true;
    this.stop.abort();
    for (const q of this.queues) q.dropped.shutdown += q.items.splice(0).length;
    await this.idle();
    await this.dispatcher.destroy().catch(() => undefined);
  }
}
