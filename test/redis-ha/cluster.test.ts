/**
 * canary-gate on a real Redis Cluster (six redis-server processes, three primaries with a replica each, started
 * here): the stores' scripts and pipelines stay in the service's hash slot, the lease and the fenced rollback work
 * through MOVED redirections, events reach a Cluster subscriber, and a failover of the service's primary in the middle
 * of a rollout under load fails no request and ends with the rollback written exactly once.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RollbackDecision } from '../../src/core/controller.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import { flagOptionsOf, RedisFlagStore } from '../../src/flag/redis-flag-store.ts';
import { createRedisClient, waitReady, type Redis } from '../../src/fleet/redis-client.ts';
import { RedisLease } from '../../src/fleet/redis-lease.ts';
import { eventually, silent, uniqueService } from '../helpers/redis.ts';
import { startCluster, type TestCluster } from '../helpers/redis-ha.ts';
import { failoverUnderLoad, haConfig, passingVerdict, startHaFleet, startLoad, type HaFleet } from './ha-fleet.ts';
import type { Router } from '../../src/router/router.ts';

const MAIN = join(import.meta.dirname, '../../src/cli/main.ts');
let cluster: TestCluster;
const clients: Redis[] = [];
let fleet: HaFleet | undefined;
let router: Router | undefined;

beforeAll(async () => {
  cluster = await startCluster();
}, 30_000);

afterAll(async () => {
  await router?.destroy();
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
  const keys = serviceKeys('canary-gate', service);
  // Seeds from redis.nodes (a comma-separated list in the environment), two of six: the client discovers the rest.
  const seeds = cluster.nodes.slice(0, 2).map((n) => `127.0.0.1:${n.port}`);
  const config = haConfig(service, 'a', 'v1', 'http://127.0.0.1:1', {
    REDIS_URL: 'redis://seeds-from-redis-nodes',
    CANARY_GATE_REDIS_MODE: 'cluster',
    CANARY_GATE_REDIS_NODES: seeds.join(','),
  });
  expect(config.redis.nodes).toEqual(seeds);
  const redis = createRedisClient(config.redis, silent);
  clients.push(redis);
  await waitReady(redis, 5000);
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
  expect(second).toBeGreaterThan(first);
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

it('runs the CLI against the Cluster: rollback, explain and reset with the seed nodes in REDIS_URL', async () => {
  const service = uniqueService('ha-cli');
  const env = { PATH: process.env.PATH ?? '', REDIS_URL: cluster.url, CANARY_GATE_REDIS_MODE: 'cluster', SERVICE_NAME: service };
  const cli = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 20_000, env });
  const rollback = cli('rollback', '--reason', 'pages at 3am', '--actor', 'alice');
  expect(rollback.stdout, rollback.stderr).toBe(`rolled back: feature:{${service}}:v2_traffic_percentage = 0\n`);
  const explain = cli('explain');
  expect(explain.status, explain.stderr).toBe(0);
  expect(explain.stdout).toContain('pages at 3am');
  const reset = cli('reset', '--flag', '10', '--reason', 'fixed', '--actor', 'bob');
  expect(reset.stdout, reset.stderr).toBe(`reset: latch cleared for ${service}, feature:{${service}}:v2_traffic_percentage = 10\n`);
  const redis = await clusterClient();
  expect(await redis.get(`feature:{${service}}:v2_traffic_percentage`)).toBe('10');
  const keys = serviceKeys('canary-gate', service);
  await redis.del(keys.decision, keys.reset, keys.audit, `feature:{${service}}:v2_traffic_percentage`);
});

it('judges, survives a failover of the service primary under load with no failed request, and rolls back exactly once', async () => {
  const service = uniqueService('ha-cluster');
  const redisEnv = { REDIS_URL: cluster.url, CANARY_GATE_REDIS_MODE: 'cluster' };
  fleet = await startHaFleet(service, redisEnv);
  const primary = await cluster.primaryOf(serviceKeys('canary-gate', service).lease);
  const run = await failoverUnderLoad(
    fleet,
    await clusterClient(),
    await clusterClient(),
    redisEnv,
    () => primary.kill(),
    (r) => (router = r),
  );
  console.log(
    `cluster failover: ${run.requestsDuring} requests from the kill to 100 after the next verdict, ${run.failedDuring} failed; next verdict ${run.secondsToVerdict.toFixed(2)} s after the kill; ${run.rps.toFixed(0)} requests/s; rollbacks in the audit stream: ${run.rollbacks}`,
  );
  expect(await cluster.primaryOf(serviceKeys('canary-gate', service).lease)).not.toBe(primary);
  expect(run.failedDuring).toBe(0);
  expect(fleet.sidecars.map((s) => s.status().redis)).toEqual(
    Array(3).fill(expect.objectContaining({ mode: 'cluster', connection: 'ready' })),
  );
  expect(run.rollbacks).toBe(1);
  expect(run.events).toEqual(['rollback']);
  // The router's subscription survived the failover: the rollback reached it as an event, not by polling.
  expect(run.routerWeight).toBe(0);
  expect(run.routerEventReads).toBeGreaterThan(0);
  expect(run.routerRedis).toEqual({ mode: 'cluster', connection: 'ready' });
  expect(fleet.sidecars.filter((s) => s.status().evaluator.holding)).toHaveLength(1);
}, 50_000);

it('writes a rollback decided while the primary fails over exactly once, on the promoted replica', async () => {
  await fleet?.stop();
  await router?.destroy();
  router = undefined;
  // A service whose slot is served by a primary that still has its replica (the test above used up one shard's).
  let service = uniqueService('ha-decide');
  while ((await cluster.replicasOf(await cluster.primaryOf(serviceKeys('canary-gate', service).lease))) === 0)
    service = uniqueService('ha-decide');
  const keys = serviceKeys('canary-gate', service);
  fleet = await startHaFleet(service, { REDIS_URL: cluster.url, CANARY_GATE_REDIS_MODE: 'cluster' });
  const redis = await clusterClient();
  await redis.set(fleet.config.flag.key, '30');
  const load = startLoad(fleet.proxies);
  try {
    await passingVerdict(fleet);
    // The canary starts failing; at its first failing evaluation (one of the three a rollback needs) the primary dies.
    const primary = await cluster.primaryOf(keys.lease);
    const failingFrom = Date.now();
    fleet.canaryApp.handle((_req, res) => {
      res.writeHead(500);
      res.end('boom');
    });
    await eventually(
      () => fleet!.evaluations.find((e) => e.atMs > failingFrom && e.event.verdict?.outcome === 'fail'),
      10_000,
      'a failing verdict',
    );
    const before = load.statuses.length;
    await primary.kill();
    await eventually(
      async () => ((await redis.get(fleet!.config.flag.key).catch(() => null)) === '0' ? true : undefined),
      20_000,
      'the rollback',
    );
    const statuses = (await load.stop()).slice(before);
    const audit = await redis.xrange(keys.audit, '-', '+');
    const rollbacks = audit.filter(([, fields]) => fields[fields.indexOf('event') + 1] === 'rollback');
    const proxyFailures = statuses.filter((s) => s === 0 || (s >= 502 && s <= 504)).length;
    expect(await cluster.primaryOf(keys.lease)).not.toBe(primary);
    expect(proxyFailures).toBe(0);
    expect(rollbacks).toHaveLength(1);
    expect(fleet.evaluations.filter((e) => e.event.decisionWritten !== null)).toHaveLength(1);
  } finally {
    await load.stop();
  }
}, 50_000);
