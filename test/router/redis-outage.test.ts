/**
 * The router fails open: with its private redis-server stopped, it keeps routing by the last known weight and says
 * so (`canary_gate_router_weight_stale` 1); once a Redis is back on the same port it follows the flag again, by poll
 * and by event (the subscription comes back). A router started while Redis is away routes everything to the
 * baseline until it reads the flag.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort, startRedisServer } from '../../src/demo/find-redis.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import { flagOptionsOf, RedisFlagStore } from '../../src/flag/redis-flag-store.ts';
import { client, eventually } from '../helpers/redis.ts';
import { binomialInterval } from '../helpers/binomial.ts';
import { scrape, split, startRouter, type RouterUnderTest } from '../helpers/router.ts';

const FLAG = 'feature:{outage}:v2_traffic_percentage';
/** Fast polls and a fail-fast client, so that the outage shows within a fraction of a second. */
const FAST = {
  CANARY_GATE_ROUTER_POLL_INTERVAL: '100ms',
  CANARY_GATE_REDIS_COMMAND_TIMEOUT: '200ms',
  CANARY_GATE_REDIS_CONNECT_TIMEOUT: '300ms',
  SERVICE_NAME: 'outage',
};

let redis: Awaited<ReturnType<typeof startRedisServer>>;
let r: RouterUnderTest;

beforeAll(async () => {
  redis = await startRedisServer();
  const c = await client(redis.url);
  await c.set(FLAG, '40');
  c.disconnect();
  r = await startRouter({ ...FAST, REDIS_URL: redis.url });
});

afterAll(async () => {
  await r?.close();
  await redis?.stop();
});

/** Sets the flag on a (restarted) Redis and publishes a reset event, as `canary-gate reset --flag` does. */
async function resetTo(url: string, flag: string): Promise<void> {
  const c = await client(url);
  await new RedisFlagStore(c, serviceKeys('canary-gate', 'outage'), flagOptionsOf(r.config.flag)).reset('test', 'step', flag, Date.now());
  c.disconnect();
}

it('keeps the last known weight while Redis is down, says it is stale, and follows the flag again once Redis is back', async () => {
  await eventually(() => (r.router.status().subscribed ? true : undefined), 5000, 'the subscription');
  expect(r.router.status()).toMatchObject({ weightPercent: 40, stale: false });
  expect(await scrape(r.adminUrl, 'canary_gate_router_weight_stale')).toBe(0);

  await redis.stop();
  await eventually(() => (r.router.status().stale ? true : undefined), 5000, 'the weight to go stale');
  expect(await scrape(r.adminUrl, 'canary_gate_router_weight_stale')).toBe(1);
  expect(await scrape(r.adminUrl, 'canary_gate_router_weight_percent')).toBe(40);
  expect(await scrape(r.adminUrl, 'canary_gate_router_flag_read_failures_total')).toBeGreaterThan(0);
  const n = 1000;
  const during = await split(r.url, n);
  const [low, high] = binomialInterval(n, 0.4);
  console.log(
    `redis down: weight kept at ${r.router.status().weightPercent} %, v2 ${during.v2} of ${n}, 99.9 % interval [${low}, ${high}], other answers ${during.wrong}`,
  );
  expect(during.wrong).toBe(0);
  expect(during.v2).toBeGreaterThanOrEqual(low);
  expect(during.v2).toBeLessThanOrEqual(high);
  expect(r.router.status().stale).toBe(true);

  // A fresh, empty Redis on the same port: the flag is set again with an event; the poll or the event finds it.
  redis = await startRedisServer([], redis.port);
  await resetTo(redis.url, '70');
  await eventually(
    () => (r.router.status().weightPercent === 70 && !r.router.status().stale ? true : undefined),
    10_000,
    'the weight at 70, fresh',
  );
  expect(await scrape(r.adminUrl, 'canary_gate_router_weight_stale')).toBe(0);

  // The subscription is back: an event leads to a read triggered by it.
  await eventually(() => (r.router.status().subscribed ? true : undefined), 5000, 'the subscription again');
  const events = r.router.status().reads.event;
  await resetTo(redis.url, '20');
  await eventually(
    () => (r.router.status().reads.event > events && r.router.status().weightPercent === 20 ? true : undefined),
    5000,
    'an event read after the restart',
  );
});

it('starts without Redis: every request to the baseline, stale, until the flag can be read', async () => {
  const port = await freePort();
  const late = await startRouter({ ...FAST, REDIS_URL: `redis://127.0.0.1:${port}` });
  let own: Awaited<ReturnType<typeof startRedisServer>> | undefined;
  try {
    expect(late.router.status()).toMatchObject({ weightPercent: 0, stale: true });
    expect(late.router.status().redis.connection).not.toBe('ready');
    expect(await split(late.url, 100)).toEqual({ v1: 100, v2: 0, wrong: 0 });
    expect(await scrape(late.adminUrl, 'canary_gate_router_weight_stale')).toBe(1);
    own = await startRedisServer([], port);
    const c = await client(own.url);
    await c.set(FLAG, '30');
    c.disconnect();
    await eventually(
      () => (late.router.status().weightPercent === 30 && !late.router.status().stale ? true : undefined),
      10_000,
      'the weight at 30',
    );
  } finally {
    await late.close();
    await own?.stop();
  }
});
