/**
 * canary-gate on a real Sentinel setup (a primary, a replica and a Sentinel, redis-server processes started here):
 * the client finds the primary through the Sentinel, the lease and the fenced rollback work on it, and a failover in
 * the middle of a rollout under load (the primary killed) fails no request: the sidecars reconnect to the promoted
 * replica, judge again, and the rollback is written exactly once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { serviceKeys } from '../../src/core/keys.ts';
import { flagOptionsOf, RedisFlagStore } from '../../src/flag/redis-flag-store.ts';
import { createRedisClient, waitReady, type Redis } from '../../src/fleet/redis-client.ts';
import { RedisLease } from '../../src/fleet/redis-lease.ts';
import { silent, uniqueService } from '../helpers/redis.ts';
import { startSentinel, type TestSentinel } from '../helpers/redis-ha.ts';
import { failoverUnderLoad, haConfig, startHaFleet, type HaFleet } from './ha-fleet.ts';
import type { Router } from '../../src/router/router.ts';

let setup: TestSentinel;
const clients: Redis[] = [];
let fleet: HaFleet | undefined;
let router: Router | undefined;

beforeAll(async () => {
  setup = await startSentinel();
}, 30_000);

afterAll(async () => {
  await router?.destroy();
  await fleet?.stop();
  for (const c of clients) c.disconnect();
  await setup?.stop();
});

async function sentinelClient(): Promise<Redis> {
  const c = createRedisClient({ url: setup.url, commandTimeout: 1000, connectTimeout: 1000 }, silent);
  clients.push(c);
  await waitReady(c, 5000);
  return c;
}

it('reads a redis+sentinel:// URL as the sentinel mode with its master name', () => {
  const config = haConfig('ha-config', 'a', 'v1', 'http://127.0.0.1:1', { REDIS_URL: setup.url });
  expect(config.redis.mode).toBe('sentinel');
  expect(() => haConfig('ha-config', 'a', 'v1', 'http://127.0.0.1:1', { REDIS_URL: setup.url.replace(/\/[^/]+$/, '') })).toThrow(
    expect.objectContaining({ details: [expect.stringMatching(/^redis\.masterName: must name the primary/)] }),
  );
});

it('takes the lease, fences a stale holder and latches once on the primary the Sentinel names', async () => {
  const service = uniqueService('ha-ports');
  const redis = await sentinelClient();
  const keys = serviceKeys('canary-gate', service);
  const config = haConfig(service, 'a', 'v1', 'http://127.0.0.1:1', { REDIS_URL: setup.url });
  const flags = new RedisFlagStore(redis, keys, flagOptionsOf(config.flag));
  const lease = new RedisLease(redis, keys);
  const first = await lease.acquire('pod-a/1', 1000);
  expect(await lease.acquire('pod-b/1', 1000)).toBe(0);
  await lease.release('pod-a/1');
  const second = await lease.acquire('pod-b/1', 1000);
  expect(second).toBeGreaterThan(first);
  const decision = {
    state: 'rolled_back',
    trigger: 'manual',
    reason: 'test',
    checks: [],
    baseline: null,
    canary: null,
    consecutiveBreaches: 0,
    at: '',
    by: 'test',
  } as const;
  expect(await flags.rollback({ ...decision, atMs: 1 }, first)).toBe('fenced');
  expect(await flags.rollback({ ...decision, atMs: 2 }, second)).toBe('written');
  expect(await flags.rollback({ ...decision, atMs: 3 }, second)).toBe('already_latched');
  expect(await redis.get(config.flag.key)).toBe('0');
  // Written on the primary the Sentinel names, and replicated.
  expect(await setup.primaryPort()).toBe(setup.primary.port);
  await redis.del(keys.lease, keys.fence, keys.decision, keys.audit, config.flag.key);
});

it('survives a failover of the primary under load with no failed request, judges again and rolls back exactly once', async () => {
  const service = uniqueService('ha-sentinel');
  const redisEnv = { REDIS_URL: setup.url };
  fleet = await startHaFleet(service, redisEnv);
  const run = await failoverUnderLoad(
    fleet,
    await sentinelClient(),
    await sentinelClient(),
    redisEnv,
    () => setup.primary.kill(),
    (r) => (router = r),
  );
  console.log(
    `sentinel failover: ${run.requestsDuring} requests from the kill to 100 after the next verdict, ${run.failedDuring} failed; next verdict ${run.secondsToVerdict.toFixed(2)} s after the kill; ${run.rps.toFixed(0)} requests/s; rollbacks in the audit stream: ${run.rollbacks}`,
  );
  expect(await setup.primaryPort()).toBe(setup.replica.port);
  expect(run.failedDuring).toBe(0);
  expect(fleet.sidecars.map((s) => s.status().redis)).toEqual(
    Array(3).fill(expect.objectContaining({ mode: 'sentinel', connection: 'ready' })),
  );
  expect(run.rollbacks).toBe(1);
  expect(run.events).toEqual(['rollback']);
  expect(run.routerWeight).toBe(0);
  expect(run.routerEventReads).toBeGreaterThan(0);
  expect(run.routerRedis).toEqual({ mode: 'sentinel', connection: 'ready' });
}, 55_000);
