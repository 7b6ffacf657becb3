/**
 * Every transition, delivered through a real notifier to real local receivers, one per sink: the JSON webhook gets
 * each one with its decision or verdict and the explain table, Slack a Block Kit message, PagerDuty a trigger on a
 * rollback and a resolve with the same dedup key on its reset, and nothing else.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { GATE_EVENT_KINDS } from '../../src/core/transitions.ts';
import { Notifier } from '../../src/notify/notifier.ts';
import { createSinks, notifySecretsFrom, NOTIFY_ENV } from '../../src/notify/sinks.ts';
import { PAGERDUTY_EVENTS_URL } from '../../src/notify/pagerduty-sink.ts';
import { automaticDecision, everyKind, T0, verdictOf } from '../helpers/events.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { silent } from '../helpers/redis.ts';

const ROUTING_KEY = 'R0UT1NGKEY0000000000000000000001';
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});

async function receivers(): Promise<{ webhook: Receiver; slack: Receiver; pagerduty: Receiver; notifier: Notifier }> {
  const [webhook, slack, pagerduty] = await Promise.all([startReceiver(), startReceiver(), startReceiver(202)]);
  const sinks = createSinks({
    webhookUrl: `${webhook.url}/hook`,
    slackWebhookUrl: `${slack.url}/services/T0/B0/x`,
    pagerDutyRoutingKey: ROUTING_KEY,
    pagerDutyUrl: `${pagerduty.url}/v2/enqueue`,
  });
  const notifier = new Notifier(sinks, { service: 'checkout', pod: 'pod-a' }, silent);
  cleanups.push(
    () => notifier.destroy(),
    () => webhook.close(),
    () => slack.close(),
    () => pagerduty.close(),
  );
  return { webhook, slack, pagerduty, notifier };
}

describe('every transition, to every sink', () => {
  it('delivers each kind to the webhook and to Slack, and the rollback and its reset to PagerDuty', async () => {
    const { webhook, slack, pagerduty, notifier } = await receivers();
    const events = everyKind();
    for (const e of events) notifier.notify(e);
    await notifier.idle();
    expect(webhook.received.map((r) => r.body.kind)).toEqual(events.map((e) => e.kind));
    expect(new Set(webhook.received.map((r) => r.body.kind))).toEqual(new Set(GATE_EVENT_KINDS));
    expect(slack.received).toHaveLength(events.length);
    expect(pagerduty.received.map((r) => r.body.event_action)).toEqual(['trigger', 'resolve', 'trigger']);
    expect(notifier.stats()).toEqual([
      { sink: 'webhook', queued: 0, sent: 14, failed: 0, dropped: { queue_full: 0, rejected: 0, retries_exhausted: 0, shutdown: 0 } },
      { sink: 'slack', queued: 0, sent: 14, failed: 0, dropped: { queue_full: 0, rejected: 0, retries_exhausted: 0, shutdown: 0 } },
      { sink: 'pagerduty', queued: 0, sent: 3, failed: 0, dropped: { queue_full: 0, rejected: 0, retries_exhausted: 0, shutdown: 0 } },
    ]);
    // Every request carries its notification's id as the idempotency key, a JSON content type and our user agent.
    for (const r of [...webhook.received, ...slack.received, ...pagerduty.received]) {
      expect(r.headers['idempotency-key']).toMatch(/^[0-9a-f]{32}$/);
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['user-agent']).toBe('canary-gate');
    }
    expect(webhook.received.map((r) => r.headers['idempotency-key'])).toEqual(webhook.received.map((r) => r.body.id));
    expect(webhook.received[0]!.path).toBe('/hook');
    expect(pagerduty.received[0]!.path).toBe('/v2/enqueue');
  });

  it('webhook: the event flattened beside id, service, pod, time, summary and the explain table', async () => {
    const { webhook, notifier } = await receivers();
    const decision = automaticDecision(T0);
    notifier.notify({ kind: 'rolled_back', atMs: decision.atMs, advisory: false, decision });
    notifier.notify({ kind: 'warning_started', atMs: T0 + 5000, advisory: false, verdict: verdictOf('warn', T0 + 5000) });
    await notifier.idle();
    const [rollback, warning] = webhook.received.map((r) => r.body);
    expect(rollback).toMatchObject({
      id: expect.stringMatching(/^[0-9a-f]{32}$/),
      kind: 'rolled_back',
      service: 'checkout',
      pod: 'pod-a',
      atMs: T0,
      at: new Date(T0).toISOString(),
      advisory: false,
      summary: `checkout: canary v2 rolled back (automatic): ${decision.reason}`,
      decision: {
        state: 'rolled_back',
        trigger: 'automatic',
        by: 'pod-a',
        configHash: '0123456789abcdef',
        checks: [{ check: 'error_ratio_absolute', outcome: 'fail' }, { check: 'latency_p95_relative' }],
      },
    });
    expect(rollback.explain).toContain(`automatic rollback at ${decision.at} by pod-a (config 0123456789abcdef)`);
    expect(rollback.explain).toMatch(/error ratio\s+0\.20 %\s+12\.00 %/);
    expect(warning).toMatchObject({ kind: 'warning_started', verdict: { outcome: 'warn', canary: { version: 'v2' } } });
    expect(warning.explain).toContain('warn verdict for the window ending');
  });

  it("Slack: a Block Kit message with a header, the reason, both versions' figures and the failed checks", async () => {
    const { slack, notifier } = await receivers();
    const decision = automaticDecision(T0);
    notifier.notify({ kind: 'rolled_back', atMs: decision.atMs, advisory: false, decision });
    await notifier.idle();
    const message = slack.received[0]!.body;
    expect(message.text).toContain('checkout: canary v2 rolled back (automatic)');
    expect(message.blocks.map((b: { type: string }) => b.type)).toEqual(['header', 'section', 'section', 'section', 'context']);
    const [header, reason, figures, checks, context] = message.blocks;
    expect(header).toEqual({ type: 'header', text: { type: 'plain_text', text: 'checkout: canary v2 rolled back (automatic)' } });
    // mrkdwn escapes <, > and &: the reasons carry comparisons.
    expect(reason.text).toEqual({ type: 'mrkdwn', text: `*Reason:* ${decision.reason.replace(/>/g, '&gt;')}` });
    expect(figures.fields).toHaveLength(2);
    expect(figures.fields[0].text).toContain('*Baseline v1*');
    expect(figures.fields[1].text).toContain('*Canary v2*');
    expect(figures.fields[1].text).toContain('errors 120 (12.00 %)');
    expect(figures.fields[1].text).toContain('p95 48.0 ms');
    expect(checks.text.text).toBe('*Failed checks*\n• error_ratio_absolute: canary error ratio 12.00 % &gt; 5.00 % (fail)');
    expect(context.elements[0].text).toContain('decided by pod-a');
    for (const b of message.blocks) if (b.type === 'header') expect(b.text.text.length).toBeLessThanOrEqual(150);
  });

  it('PagerDuty: trigger on rollback and resolve on reset with one dedup key per rollback (service + decision time)', async () => {
    const { pagerduty, notifier } = await receivers();
    const decision = automaticDecision(T0);
    notifier.notify({ kind: 'rolled_back', atMs: decision.atMs, advisory: false, decision });
    notifier.notify({ kind: 'breaching', atMs: T0 + 1, advisory: false, verdict: verdictOf('fail', T0 + 1), consecutiveBreaches: 1 });
    notifier.notify({ kind: 'reset', atMs: T0 + 60_000, advisory: false, actor: 'bob', reason: 'fixed', decision });
    await notifier.idle();
    const [trigger, resolve] = pagerduty.received.map((r) => r.body);
    expect(pagerduty.received).toHaveLength(2);
    expect(trigger).toEqual({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: `canary-gate/checkout/${T0}`,
      client: 'canary-gate',
      payload: {
        summary: expect.stringContaining('checkout: canary v2 rolled back (automatic)'),
        source: 'checkout',
        severity: 'critical',
        timestamp: decision.at,
        component: 'v2',
        group: 'checkout',
        class: 'canary rollback',
        custom_details: expect.objectContaining({
          reason: decision.reason,
          trigger: 'automatic',
          decided_by: 'pod-a',
          config_hash: '0123456789abcdef',
          failed_checks: ['error_ratio_absolute: canary error ratio 12.00 % > 5.00 % (fail)'],
          explain: expect.stringContaining('automatic rollback'),
        }),
      },
    });
    expect(resolve).toEqual({ routing_key: ROUTING_KEY, event_action: 'resolve', dedup_key: `canary-gate/checkout/${T0}` });
  });

  it('advisory mode: the webhook and Slack say "would have been", PagerDuty is not paged', async () => {
    const { webhook, slack, pagerduty, notifier } = await receivers();
    const decision = automaticDecision(T0);
    notifier.notify({ kind: 'rolled_back', atMs: decision.atMs, advisory: true, decision });
    notifier.notify({ kind: 'reset', atMs: T0 + 1000, advisory: true, actor: 'bob', reason: 'measured', decision });
    await notifier.idle();
    expect(webhook.received.map((r) => r.body.advisory)).toEqual([true, true]);
    expect(slack.received[0]!.body.blocks[0].text.text).toBe('checkout: canary v2 would have been rolled back (automatic)');
    expect(pagerduty.received).toHaveLength(0);
  });
});

describe('sinks from the environment', () => {
  it('reads each secret from its variable; none set, no sink', () => {
    expect(createSinks(notifySecretsFrom({}))).toEqual([]);
    const env = {
      [NOTIFY_ENV.webhookUrl]: 'http://127.0.0.1:1/h',
      [NOTIFY_ENV.slackWebhookUrl]: ' ',
      [NOTIFY_ENV.pagerDutyRoutingKey]: 'key',
    };
    expect(notifySecretsFrom(env)).toEqual({ webhookUrl: 'http://127.0.0.1:1/h', pagerDutyRoutingKey: 'key' });
    const sinks = createSinks(notifySecretsFrom(env));
    expect(sinks.map((s) => s.name)).toEqual(['webhook', 'pagerduty']);
    const pd = sinks[1]!.render({
      id: 'x',
      service: 's',
      pod: 'p',
      event: { kind: 'rolled_back', atMs: T0, advisory: false, decision: automaticDecision(T0) },
    });
    expect(pd?.url).toBe(PAGERDUTY_EVENTS_URL);
  });

  it('refuses a URL that is not http(s), naming the variable and never the value', () => {
    let error: (Error & { code?: string; details?: readonly string[] }) | undefined;
    try {
      createSinks({ webhookUrl: 'hooks.example.com/SECRET-PATH', pagerDutyUrl: 'ftp://x/SECRET2' });
    } catch (err) {
      error = err as typeof error;
    }
    expect(error?.code).toBe('CG_CONFIG_INVALID');
    expect(error?.details).toEqual([
      'CANARY_GATE_NOTIFY_WEBHOOK_URL: not an http(s) URL (value not shown: it is a secret)',
      'CANARY_GATE_NOTIFY_PAGERDUTY_URL: not an http(s) URL (value not shown: it is a secret)',
      'CANARY_GATE_NOTIFY_PAGERDUTY_URL: set without CANARY_GATE_NOTIFY_PAGERDUTY_ROUTING_KEY',
    ]);
    expect(JSON.stringify({ message: error?.message, details: error?.details })).not.toContain('SECRET');
  });
});
