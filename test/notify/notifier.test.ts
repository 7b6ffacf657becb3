/**
 * The notifier against real local receivers that fail, hang and recover: delivered at least once after recovery with
 * the same idempotency key on every attempt, bounded by its timeout, never blocking the caller or another sink; a full
 * queue drops its oldest, counted; a permanent refusal is not retried; no secret reaches a log.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Evaluator } from '../../src/app/evaluator.ts';
import type { GateEvent } from '../../src/core/transitions.ts';
import { Notifier, redact, type NotifierOptions } from '../../src/notify/notifier.ts';
import { backoffMs, retryableStatus } from '../../src/notify/retry.ts';
import type { Sink } from '../../src/notify/sink.ts';
import { createSinks } from '../../src/notify/sinks.ts';
import { createWebhookSink } from '../../src/notify/webhook-sink.ts';
import { createSlackSink } from '../../src/notify/slack-sink.ts';
import { automaticDecision, T0, verdictOf } from '../helpers/events.ts';
import { MemoryFlagStore } from '../helpers/memory-flag-store.ts';
import { MemoryLease } from '../helpers/memory-lease.ts';
import { MemoryWindowSource } from '../helpers/memory-window-source.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { captureLogs, eventually, silent } from '../helpers/redis.ts';
import { THRESHOLDS_ONLY } from '../helpers/snapshots.ts';
import { closedPort } from '../helpers/upstream.ts';

/** Short waits, so that a test sees several attempts; the timeout bounds an attempt to a hanging receiver. */
const FAST: Partial<NotifierOptions> = { timeoutMs: 300, backoffBaseMs: 20, backoffCapMs: 50 };
const NO_DROPS = { queue_full: 0, rejected: 0, retries_exhausted: 0, shutdown: 0 };

// biome-ignore lint/suspicious/noConfusingVoidType: a cleanup may be sync (void) or async
const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
});

async function receiver(behaviour: Parameters<typeof startReceiver>[0] = 'ok'): Promise<Receiver> {
  const r = await startReceiver(behaviour);
  cleanups.push(() => r.close());
  return r;
}

function notifierOf(sinks: Sink[], options: Partial<NotifierOptions> = FAST, logger = silent): Notifier {
  const notifier = new Notifier(sinks, { service: 'checkout', pod: 'pod-a' }, logger, options);
  cleanups.push(() => notifier.destroy());
  return notifier;
}

/** A distinct transition per `i` (a warning at a different time). */
const warning = (i: number): GateEvent => ({
  kind: 'warning_started',
  atMs: T0 + i * 1000,
  advisory: false,
  verdict: verdictOf('warn', T0 + i * 1000),
});
const keys = (r: Receiver): unknown[] => r.received.map((x) => x.headers['idempotency-key']);

describe('a receiver that fails, hangs and recovers', () => {
  it.each([
    ['answering 500', 'fail' as const],
    ['never answering (each attempt ends at the timeout)', 'hang' as const],
  ])('%s: retried with the same idempotency key, delivered once it recovers', async (_, behaviour) => {
    const hook = await receiver(behaviour);
    const notifier = notifierOf([createWebhookSink(hook.url)]);
    notifier.notify(warning(1));
    await eventually(() => (hook.received.length >= 2 ? true : undefined), 10_000, 'two failed attempts');
    hook.behave('ok');
    await notifier.idle();
    const [stats] = notifier.stats();
    expect(stats).toMatchObject({ sent: 1, dropped: NO_DROPS });
    expect(stats!.failed).toBe(hook.received.length - 1);
    expect(new Set(keys(hook)).size).toBe(1);
    expect(keys(hook)[0]).toBe(hook.received.at(-1)!.body.id);
  });

  it('a permanent refusal (404) is given up at once; a 500 every time after maxAttempts', async () => {
    const gone = await receiver(404);
    const down = await receiver('fail');
    const notifier = notifierOf([createWebhookSink(gone.url), createSlackSink(down.url)], { ...FAST, maxAttempts: 3 });
    notifier.notify(warning(1));
    await notifier.idle();
    expect(gone.received).toHaveLength(1);
    expect(down.received).toHaveLength(3);
    expect(notifier.stats()).toEqual([
      { sink: 'webhook', queued: 0, sent: 0, failed: 1, dropped: { ...NO_DROPS, rejected: 1 } },
      { sink: 'slack', queued: 0, sent: 0, failed: 3, dropped: { ...NO_DROPS, retries_exhausted: 1 } },
    ]);
  });

  it('queues the same transition once: a repeat has the same id', async () => {
    const hook = await receiver();
    const notifier = notifierOf([createWebhookSink(hook.url)]);
    notifier.notify(warning(1));
    notifier.notify(warning(1));
    notifier.notify(warning(2));
    await notifier.idle();
    expect(hook.received.map((r) => r.body.atMs)).toEqual([T0 + 1000, T0 + 2000]);
  });
});

describe('nothing blocks', () => {
  it('one hanging sink delays only itself: notify() returns, the other sink gets everything meanwhile', async () => {
    const stuck = await receiver('hang');
    const slack = await receiver();
    const notifier = notifierOf([createWebhookSink(stuck.url), createSlackSink(slack.url)], { ...FAST, timeoutMs: 60_000 });
    for (let i = 1; i <= 3; i++) notifier.notify(warning(i));
    await eventually(() => (slack.received.length === 3 ? true : undefined), 10_000, 'the three notifications at the working sink');
    expect(stuck.hanging()).toBe(1);
    expect(notifier.stats()[0]).toMatchObject({ sink: 'webhook', queued: 2, sent: 0 });
  });

  it('an evaluation that rolls back completes while the sink it notifies hangs', async () => {
    const stuck = await receiver('hang');
    const notifier = notifierOf([createWebhookSink(stuck.url)], { ...FAST, timeoutMs: 60_000 });
    const slot = T0 / 1000; // slots of 1 s
    const clock = (): number => (slot + 5) * 1000 + 50; // just after the window of slots slot+1 .. slot+4
    const lease = new MemoryLease(clock);
    const flags = new MemoryFlagStore(lease, '10');
    const source = new MemoryWindowSource({ baseline: 'v1', canary: 'v2' }, 1000, 4);
    cleanups.push(() => source.destroy());
    for (let s = slot; s <= slot + 4; s++) {
      source.put('v1', 'v1-a', s, { requests: 200, errors: 0, latencyUs: 20_000 });
      source.put('v2', 'v2-a', s, { requests: 200, errors: 120, latencyUs: 20_000 });
    }
    const evaluator = new Evaluator(
      { holderId: 'a/1', pod: 'a', slotMs: 1000, slots: 4, leaseTtlMs: 3000, policy: THRESHOLDS_ONLY, consecutiveBreaches: 1 },
      { lease, flags, source, clock, logger: silent, notify: (e) => notifier.notify(e) },
    );
    await evaluator.renewLease();
    const event = await evaluator.evaluate();
    expect(event?.decisionWritten).toMatchObject({ trigger: 'automatic' });
    await eventually(
      () => (stuck.received.some((r) => r.body.kind === 'rolled_back') ? true : undefined),
      5000,
      'the rollback at the hanging receiver',
    );
    expect(stuck.hanging()).toBe(1);
    expect(notifier.stats()[0]!.sent).toBe(0);
  });
});

describe('a bounded queue', () => {
  it('drops the oldest waiting notification when full, and counts it', async () => {
    const hook = await receiver('hang');
    const logs = captureLogs();
    const notifier = notifierOf([createWebhookSink(hook.url)], { ...FAST, queueSize: 2 }, logs.logger);
    for (let i = 1; i <= 5; i++) notifier.notify(warning(i)); // 1 in flight, 2 and 3 waiting, then 4 and 5 push them out
    expect(notifier.stats()[0]).toMatchObject({ queued: 2, dropped: { ...NO_DROPS, queue_full: 2 } });
    hook.behave('ok');
    await notifier.idle();
    const delivered = hook.received
      .filter((_, i, all) => all.findIndex((r) => r.body.id === all[i]!.body.id) === i)
      .map((r) => r.body.atMs);
    expect(delivered).toEqual([T0 + 1000, T0 + 4000, T0 + 5000]);
    expect(notifier.stats()[0]).toMatchObject({ sent: 3, queued: 0, dropped: { ...NO_DROPS, queue_full: 2 } });
    expect(logs.text().match(/notification queue full; oldest dropped/g)).toHaveLength(2);
  });

  it('destroy() drops what is queued and in flight, counted as shutdown', async () => {
    const hook = await receiver('hang');
    const notifier = notifierOf([createWebhookSink(hook.url)], { ...FAST, timeoutMs: 60_000 });
    notifier.notify(warning(1));
    notifier.notify(warning(2));
    await eventually(() => (hook.hanging() === 1 ? true : undefined), 5000, 'the first attempt in flight');
    await notifier.destroy();
    expect(notifier.stats()[0]).toMatchObject({ sent: 0, failed: 0, queued: 0, dropped: { ...NO_DROPS, shutdown: 2 } });
    notifier.notify(warning(3)); // after destroy: ignored, never throws
    expect(notifier.stats()[0]!.queued).toBe(0);
  });
});

describe('secrets', () => {
  it('never appear in the logs of failing, hanging or unreachable sinks', async () => {
    const failing = await receiver('fail');
    const hanging = await receiver('hang');
    const refused = await closedPort();
    const secrets = {
      webhook: `${failing.url}/hook/SECRET-WEBHOOK-7f3a`,
      slack: `http://127.0.0.1:${refused}/services/T0/B0/SECRET-SLACK-91bc`,
      key: 'SECRET-ROUTING-KEY-00aa',
    };
    const logs = captureLogs('debug');
    const notifier = notifierOf(
      createSinks({
        webhookUrl: secrets.webhook,
        slackWebhookUrl: secrets.slack,
        pagerDutyRoutingKey: secrets.key,
        pagerDutyUrl: `${hanging.url}/SECRET-PD-PATH`,
      }),
      { ...FAST, maxAttempts: 2 },
      logs.logger,
    );
    const decision = automaticDecision(T0);
    notifier.notify({ kind: 'rolled_back', atMs: T0, advisory: false, decision });
    await notifier.idle();
    const text = logs.text();
    expect(text.match(/notification failed; will retry/g)).toHaveLength(3);
    expect(text.match(/notification failed; given up/g)).toHaveLength(3);
    expect(text).toContain('"sink":"slack"');
    expect(text).not.toContain('SECRET');
  });

  it('redact() replaces every secret in a message', () => {
    expect(redact('POST https://hooks.example.com/T/B/abc failed: abc', ['https://hooks.example.com/T/B/abc', 'abc'])).toBe(
      'POST [redacted] failed: [redacted]',
    );
  });
});

describe('retry policy', () => {
  it.each([
    // attempt, base, cap, random -> wait: uniform below min(cap, base x 2^(attempt - 1))
    [1, 1000, 30_000, 0.5, 500],
    [2, 1000, 30_000, 0.5, 1000],
    [3, 1000, 30_000, 0.999, 3996],
    [6, 1000, 30_000, 0.5, 15_000],
    [7, 1000, 30_000, 0.5, 15_000],
    [50, 1000, 30_000, 0.999, 29_970],
    [4, 1000, 30_000, 0, 0],
  ])('attempt %i (base %i, cap %i, random %f) waits %i ms', (attempt, base, cap, random, wait) => {
    expect(backoffMs(attempt, base, cap, () => random)).toBe(wait);
  });

  it.each([
    [200, false],
    [400, false],
    [401, false],
    [404, false],
    [410, false],
    [301, false],
    [408, true],
    [429, true],
    [500, true],
    [503, true],
  ])('status %i retryable: %s', (status, retry) => {
    expect(retryableStatus(status)).toBe(retry);
  });
});
