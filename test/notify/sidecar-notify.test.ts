/**
 * End to end: a baseline sidecar and a canary sidecar on a real Redis, with real receivers for the JSON webhook and
 * PagerDuty. The canary fails: the lease holder announces the breach and the rollback to the webhook and triggers
 * PagerDuty; a reset made through the other pod's admin API is read from Redis by the holder, which resolves the
 * PagerDuty alert with the trigger's dedup key. No secret reaches the logs.
 */
import { request } from 'undici';
import { expect, it } from 'vitest';
import { startReceiver } from '../helpers/receiver.ts';
import { captureLogs, client, eventually, uniqueService } from '../helpers/redis.ts';
import { cleanups, configFor, holderOf, send, startPod, TOKEN, upstream } from '../helpers/sidecar-fleet.ts';

it("delivers a failing canary's rollback to the webhook and PagerDuty, and a reset as a PagerDuty resolve", async () => {
  const service = uniqueService('notify');
  const [webhook, pagerduty] = await Promise.all([startReceiver(), startReceiver(202)]);
  cleanups.push(
    () => webhook.close(),
    () => pagerduty.close(),
  );
  const secrets = {
    webhookUrl: `${webhook.url}/hook/SECRET-HOOK-5e1f`,
    pagerDutyRoutingKey: 'SECRET-KEY-77d0',
    pagerDutyUrl: `${pagerduty.url}/v2/enqueue`,
  };
  const logs = captureLogs('debug');
  const redis = await client();
  cleanups.push(async () => redis.disconnect());
  const [healthy, failing] = [await upstream(), await upstream(503)];
  const deps = { logger: logs.logger, notify: { secrets, options: { timeoutMs: 2000, backoffBaseMs: 50 } } };
  const pods = [
    await startPod(configFor(service, 'a', 'v1', healthy.url), deps),
    await startPod(configFor(service, 'c', 'v2', failing.url), deps),
  ];
  cleanups.push(async () => {
    const keys = await redis.keys(`cg-test:{${service}}:*`);
    await redis.del(`cg-test:flag:{${service}}`, ...keys);
  });
  await redis.set(`cg-test:flag:{${service}}`, '10');

  await Promise.all([send(pods[0]!.proxy, 40), send(pods[1]!.proxy, 40)]);
  const rollback = await eventually(
    () => webhook.received.find((r) => r.body.kind === 'rolled_back'),
    15_000,
    'the rollback at the webhook',
  );
  const holder = holderOf(pods)!;
  expect(rollback.body).toMatchObject({
    service,
    pod: holder.config.pod.name,
    kind: 'rolled_back',
    advisory: false,
    decision: { state: 'rolled_back', trigger: 'automatic', consecutiveBreaches: 3, by: holder.config.pod.name },
    summary: expect.stringContaining(`${service}: canary v2 rolled back (automatic)`),
    explain: expect.stringContaining('automatic rollback at'),
  });
  expect(rollback.path).toBe('/hook/SECRET-HOOK-5e1f');
  // The breach came first (thresholds only: three failing evaluations in a row roll back).
  expect(webhook.received.map((r) => r.body.kind)).toContain('breaching');
  const trigger = await eventually(
    () => pagerduty.received.find((r) => r.body.event_action === 'trigger'),
    10_000,
    'the PagerDuty trigger',
  );
  expect(trigger.body).toMatchObject({
    routing_key: secrets.pagerDutyRoutingKey,
    dedup_key: `canary-gate/${service}/${rollback.body.decision.atMs}`,
    payload: { source: service, severity: 'critical' },
  });
  expect(trigger.headers['idempotency-key']).toBe(rollback.body.id);

  // Reset through the pod that does not hold the lease: the holder learns it from Redis and announces it.
  const other = pods.find((p) => p !== holder)!;
  const reset = await request(`${other.admin}/reset`, {
    method: 'POST',
    body: JSON.stringify({ reason: 'v2.0.1 fixes it', actor: 'alice', flag: 5 }),
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(reset.statusCode).toBe(200);
  await reset.body.dump();
  const resolve = await eventually(
    () => pagerduty.received.find((r) => r.body.event_action === 'resolve'),
    10_000,
    'the PagerDuty resolve',
  );
  expect(resolve.body).toEqual({ routing_key: secrets.pagerDutyRoutingKey, event_action: 'resolve', dedup_key: trigger.body.dedup_key });
  const resetEvent = webhook.received.find((r) => r.body.kind === 'reset')!;
  expect(resetEvent.body).toMatchObject({
    pod: holder.config.pod.name,
    actor: 'alice@127.0.0.1',
    reason: 'v2.0.1 fixes it',
    decision: { atMs: rollback.body.decision.atMs },
  });

  // Each transition once (by its idempotency key), and only from the holder.
  const ids = webhook.received.map((r) => r.headers['idempotency-key']);
  expect(new Set(ids).size).toBe(ids.length);
  expect(new Set(webhook.received.map((r) => r.body.pod))).toEqual(new Set([holder.config.pod.name]));
  const metrics = await (await request(`${holder.admin}/metrics`)).body.text();
  expect(metrics).toMatch(/^canary_gate_notifications_sent_total\{sink="webhook"\} [1-9]\d*$/m);
  expect(metrics).toMatch(/^canary_gate_notifications_sent_total\{sink="pagerduty"\} 2$/m);
  expect(metrics).toMatch(/^canary_gate_notifications_failed_total\{sink="webhook"\} 0$/m);
  expect(metrics).toMatch(/^canary_gate_notifications_dropped_total\{sink="pagerduty",reason="queue_full"\} 0$/m);
  expect(logs.text()).toContain('notification sent');
  expect(logs.text()).not.toContain('SECRET');
});
