/**
 * canary-gate on a real Redis Cluster (six redis-server processes, three primaries with a replica each, started
 * here): the stores' scripts and pipelines stay in the service's hash slot, the lease and the fenced rollback work
 * through MOVED redirections, events reach a Cluster subscriber, and a failover of the service's primary in the middle
 * of a rollout under load fails no request and ends with the rollback written exactly once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RollbackDecision } from '../../src/core/controller.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import { flagOptionsOf, RedisFlagStore } from '../../src/flag/redis-flag-store.ts';
import { createRedisClient, waitReady, type Redis } from '../../src/fleet/redis-client.ts';
import { RedisLease } from '../../src/fleet/redis-lease.ts';
import { eventually, silent, uniqueService } from '../helpers/redis.ts';
import { startCluster, type TestCluster } from '../helpers/redis-ha.ts';
import { haConfig, startHaFleet, startLoad, verdictAfter, type HaFleet } from './ha-fleet.ts';

let cluster: TestCluster;
const clients: Redis[] = [];
let fleet: HaFleet | undefined;

beforeAll(async () => {
  cluster = await startCluster();
}, 30_000);

afterAll(async () => {
  await fleet?.stop();
  for (const c of clients) c.disconnect();
  await cluster?.stop();
});

async function clusterClient(): Promise<Redis> {
  const c = createRedisClient({ url: cluster.url, mode: 'cluster', commandTimeout: 1000, connectTimeout: 1000 }, silent);
  clients.push(c);
  await waitReady(c, 5000);
  return c;
}

const decision = (atMs: number): RollbackDecision => ({
  state: 'rolled_back',
  trigger: 'manual',
  reason: 'test: a manual rollback',
  checks: [],
  baseline: null,
  canary: null,
  consecutiveBreaches: 0,
  atMs,
  at: new Date(atMs).toISOString(),
  by: 'test',
});

it('reads the cluster mode and the seed nodes from the config, and refuses a flag key outside the service slot', () => {
  const config = haConfig('ha-config', 'a', 'v1', 'http://127.0.0.1:1', { REDIS_URL: cluster.url, CANARY_GATE_REDIS_MODE: 'cluster' });
  expect(config.redis.mode).toBe('cluster');
  expect(config.flag.key).toBe('feature:{ha-config}:v2_traffic_percentage');
  expect(() =>
    haConfig('ha-config', 'a', 'v1', 'http://127.0.0.1:1', {
      REDIS_URL: cluster.url,
      CANARY_GATE_REDIS_MODE: 'cluster',
      CANARY_GATE_FLAG_KEY: 'feature:v2_traffic_percentage',
    }),
  ).toThrow(expect.objectContaining({ details: [expect.stringMatching(/^flag\.key: must carry the service's hash tag \{ha-config\}/)] }));
});

it('takes the lease, fences a stale holder, latches once and publishes events to a Cluster subscriber', async () => {
  const service = uniqueService('ha-ports');
  const redis = await clusterClient();
  const keys = serviceKeys('canary-gate', service);
  const config = haConfig(service, 'a', 'v1', 'http://127.0.0.1:1', { REDIS_URL: cluster.url, CANARY_GATE_REDIS_MODE: 'cluster' });
  const flags = new RedisFlagStore(redis, keys, flagOptionsOf(config.flag));
  const lease = new RedisLease(redis, keys);
  const subscriber = await clusterClient();
  const messages: string[] = [];
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === keys.events) messages.push(message);
  });
  await subscriber.subscribe(keys.events);

  await redis.set(config.flag.key, '10');
  const first = await lease.acquire('pod-a/1', 1000);
  expect(first).toBeGreaterThan(0);
  expect(await lease.acquire('pod-b/1', 1000)).toBe(0);
  await lease.release('pod-a/1');
  const second = await lease.acquire('pod-b/1', 1000);
  expect(second).toBe(first + 1);
  // The old holder's token is stale: its write is refused, nothing changes.
  expect(await flags.rollback(decision(1), first)).toBe('fenced');
  expect(await redis.get(config.flag.key)).toBe('10');
  expect(await flags.rollback(decision(2), second)).toBe('written');
  expect(await flags.rollback(decision(3), second)).toBe('already_latched');
  expect(await redis.get(config.flag.key)).toBe('0');
  expect(await flags.latch()).toMatchObject({ atMs: 2 });
  await flags.reset('oncall', 'fixed', '10', 4);
  expect(await redis.get(config.flag.key)).toBe('10');
  await eventually(() => (messages.length >= 2 ? true : undefined), 5000, 'the rollback and reset events');
  expect(messages.map((m) => JSON.parse(m).event)).toEqual(['rollback', 'reset']);
  // Every key of the service, the flag included, lives on the one node that serves the service's slot.
  const primary = await cluster.primaryOf(keys.lease);
  expect(await cluster.primaryOf(config.flag.key)).toBe(primary);
  expect(await cluster.primaryOf(keys.slot('v2', 123))).toBe(primary);
  await redis.del(keys.lease, keys.fence, keys.decision, keys.reset, keys.audit, config.flag.key);
});

it('judges, survives a failover of the service primary under load with no failed request, and rolls back exactly once', async () => {
  const service = uniqueService('ha-cluster');
  fleet = await startHaFleet(service, { REDIS_URL: cluster.url, CANARY_GATE_REDIS_MODE: 'cluster' });
  const redis = await clusterClient();
  const keys = serviceKeys('canary-gate', service);
  await redis.set(fleet.config.flag.key, '30');
  // A router's subscription to the gate's events, on whichever node the Cluster client picked.
  const subscriber = await clusterClient();
  const events: string[] = [];
  subscriber.on('message', (_channel: string, message: string) => events.push(JSON.parse(message).event));
  await subscriber.subscribe(keys.events);
  const load = startLoad(fleet.proxies);

  // Publish and judge: the fleet's slots are read back and the canary passes.
  await eventually(() => fleet!.evaluations.find((e) => e.event.verdict?.outcome === 'pass'), 10_000, 'a passing verdict');

  // Kill the primary that serves the service's slot; its replica takes over.
  const primary = await cluster.primaryOf(keys.lease);
  const before = load.statuses.length;
  const killedMs = Date.now();
  await primary.kill();
  const next = await eventually(() => verdictAfter(fleet!.evaluations, killedMs), 20_000, 'a verdict after the failover');
  const secondsToVerdict = (next.atMs - killedMs) / 1000;
  expect(await cluster.primaryOf(keys.lease)).not.toBe(primary);
  await eventually(() => (load.statuses.length > before + 100 ? true : undefined), 10_000, 'requests after the failover');
  const during = load.statuses.slice(before);
  const failed = during.filter((s) => s !== 200).length;

  // The canary regresses after the failover: the gate rolls back once, on the new primary.
  fleet.canaryApp.handle((_req, res) => {
    res.writeHead(500);
    res.end('boom');
  });
  await eventually(async () => ((await redis.get(fleet!.config.flag.key)) === '0' ? true : undefined), 15_000, 'the rollback');
  const statuses = await load.stop();
  const audit = await redis.xrange(keys.audit, '-', '+');
  const rollbacks = audit.filter(([, fields]) => fields[fields.indexOf('event') + 1] === 'rollback');
  console.log(
    `cluster failover: ${during.length} requests from the kill to the next verdict and after, ${failed} failed; next verdict ${secondsToVerdict.toFixed(2)} s after the kill; ${statuses.length} requests in all; rollbacks in the audit stream: ${rollbacks.length}`,
  );
  expect(failed).toBe(0);
  expect(rollbacks).toHaveLength(1);
  await eventually(() => (events.includes('rollback') ? true : undefined), 5000, 'the rollback event after the failover');
  expect(events).toEqual(['rollback']);
  expect(fleet.sidecars.filter((s) => s.status().evaluator.holding)).toHaveLength(1);
}, 50_000);
