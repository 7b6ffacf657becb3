/**
 * The router needs little of Redis: with an ACL user that may only connect, GET the flag and SUBSCRIBE to the gate's
 * channels (README, "Router: canary-gate route"), it reads the flag and follows the events.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedisServer } from '../../src/demo/find-redis.ts';
import { eventually } from '../helpers/redis.ts';
import { split, startRouter, type RouterUnderTest } from '../helpers/router.ts';

const FLAG = 'feature:{acl}:v2_traffic_percentage';
let redis: Awaited<ReturnType<typeof startRedisServer>>;
let admin: Redis;
let r: RouterUnderTest;

beforeAll(async () => {
  redis = await startRedisServer();
  admin = new Redis(redis.url);
  await admin.call(
    'ACL',
    'SETUSER',
    'router',
    'on',
    '>router-pw',
    'resetkeys',
    `~${FLAG}`,
    'resetchannels',
    '&canary-gate:*',
    '-@all',
    '+info',
    '+ping',
    '+hello',
    '+client|setname',
    '+get',
    '+subscribe',
  );
  await admin.set(FLAG, '100');
  r = await startRouter({
    REDIS_URL: redis.url.replace('redis://', 'redis://router:router-pw@'),
    SERVICE_NAME: 'acl',
    CANARY_GATE_ROUTER_POLL_INTERVAL: '1h',
  });
});

afterAll(async () => {
  await r?.close();
  admin?.disconnect();
  await redis?.stop();
});

it('reads the flag and follows an event with only +get and +subscribe beyond the connection commands', async () => {
  await eventually(() => (r.router.status().subscribed ? true : undefined), 5000, 'the subscription');
  expect(r.router.status()).toMatchObject({ weightPercent: 100, stale: false, lastError: null });
  await admin.set(FLAG, '0');
  await admin.publish('canary-gate:{acl}:events', JSON.stringify({ event: 'reset', actor: 'test', reason: 'acl' }));
  await eventually(() => (r.router.status().weightPercent === 0 ? true : undefined), 5000, 'the weight at 0');
  expect(r.router.status().reads).toEqual({ poll: 1, event: 1 });
  expect(await split(r.url, 50)).toEqual({ v1: 50, v2: 0, wrong: 0 });
});
