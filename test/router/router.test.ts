/**
 * `canary-gate route` with a real Redis (127.0.0.1:6379) and real upstreams: the observed split matches the flag's
 * weight (within a 99.9 % binomial interval), stickiness holds and is monotone when the weight rises, the gate's
 * events move the weight before the next poll, a flag set without an event reaches the router by the next poll, and
 * every response names its version.
 */
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { manualDecision } from '../../src/core/controller.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import { flagOptionsOf, RedisFlagStore } from '../../src/flag/redis-flag-store.ts';
import type { Redis } from '../../src/fleet/redis-client.ts';
import { client, dropService, eventually, uniqueService } from '../helpers/redis.ts';
import { binomialInterval } from '../helpers/binomial.ts';
import { get, scrape, split, startRouter, type RouterUnderTest } from '../helpers/router.ts';
import { closedPort } from '../helpers/upstream.ts';

let redis: Redis;
const running: RouterUnderTest[] = [];
const services: Array<{ service: string; flagKey: string }> = [];

beforeAll(async () => {
  redis = await client();
});

afterEach(async () => {
  for (const r of running.splice(0)) await r.close();
});

afterAll(async () => {
  for (const s of services) await dropService(redis, 'canary-gate', s.service, s.flagKey);
  redis.disconnect();
});

/** A fresh service and flag key with the flag at `flag`, and a router on them; `env` overrides the config. */
async function routerAt(
  flag: string | null,
  env: Record<string, string> = {},
): Promise<RouterUnderTest & { flags: RedisFlagStore; flagKey: string }> {
  const service = uniqueService('route');
  const flagKey = `{${service}}:v2_traffic_percentage`;
  services.push({ service, flagKey });
  if (flag !== null) await redis.set(flagKey, flag);
  const r = await startRouter({ SERVICE_NAME: service, CANARY_GATE_FLAG_KEY: flagKey, ...env });
  running.push(r);
  const flags = new RedisFlagStore(redis, serviceKeys('canary-gate', service), flagOptionsOf(r.config.flag));
  return { ...r, flags, flagKey };
}

describe('the split', () => {
  it.each([10, 25, 50])("weight %d: the canary's share of 2000 requests lies in its 99.9 percent binomial interval", async (weight) => {
    const r = await routerAt(String(weight));
    expect(r.router.status()).toMatchObject({ weightPercent: weight, stale: false });
    const n = 2000;
    const counts = await split(r.url, n);
    const [low, high] = binomialInterval(n, weight / 100);
    console.log(`weight ${weight} %: v2 ${counts.v2} of ${n} (${((100 * counts.v2) / n).toFixed(1)} %), 99.9 % interval [${low}, ${high}]`);
    expect(counts.wrong).toBe(0);
    expect(counts.v2).toBeGreaterThanOrEqual(low);
    expect(counts.v2).toBeLessThanOrEqual(high);
    expect(r.router.status().canary.requests).toBe(counts.v2);
    expect(await scrape(r.adminUrl, 'canary_gate_router_requests_total{service_version="v2"}')).toBe(counts.v2);
    expect(await scrape(r.adminUrl, 'canary_gate_router_weight_percent')).toBe(weight);
    expect(await scrape(r.adminUrl, 'canary_gate_router_weight_stale')).toBe(0);
  });

  it.each<[string | null, number]>([
    ['0', 0],
    ['100', 100],
    [null, 0],
    ['not a number', 0],
    ['150', 0],
  ])('flag %j: weight %d, every request on that side', async (flag, weight) => {
    const r = await routerAt(flag);
    expect(r.router.status().weightPercent).toBe(weight);
    const counts = await split(r.url, 200);
    expect(counts).toEqual(weight === 100 ? { v1: 0, v2: 200, wrong: 0 } : { v1: 200, v2: 0, wrong: 0 });
  });
});

describe('x-canary-gate-version', () => {
  it("names the version on the router's own 502 when the upstream is down", async () => {
    const r = await routerAt('100', { CANARY_GATE_ROUTER_CANARY_UPSTREAM: `http://127.0.0.1:${await closedPort()}` });
    const res = await get(r.url);
    expect(res).toMatchObject({ status: 502, version: 'v2' });
    expect(r.router.status().canary.failures.connect_error).toBe(1);
    expect(await scrape(r.adminUrl, 'canary_gate_router_upstream_failures_total{service_version="v2",error_type="connect_error"}')).toBe(1);
  });
});

describe('the admin server', () => {
  it('serves /readyz, /status and /metrics, and has no rollback or reset', async () => {
    const r = await routerAt('5');
    expect((await get(`${r.adminUrl}/readyz`)).status).toBe(200);
    const status = JSON.parse((await get(`${r.adminUrl}/status`)).body) as Record<string, unknown>;
    expect(status).toMatchObject({
      weightPercent: 5,
      stale: false,
      flag: r.flagKey,
      baseline: { version: 'v1' },
      canary: { version: 'v2' },
    });
    expect(await scrape(r.adminUrl, 'canary_gate_router_weight_percent')).toBe(5);
    for (const path of ['/rollback', '/reset']) {
      const res = await request(`${r.adminUrl}${path}`, { method: 'POST', body: '{}' });
      await res.body.dump();
      expect(res.statusCode, path).toBe(404);
    }
  });
});

describe('stickiness', () => {
  const users = Array.from({ length: 600 }, (_, i) => `user-${i}`);
  /** Each user's version, asked twice with its header (or cookie): both answers must agree. */
  async function versionsOf(url: string, headersOf: (user: string) => Record<string, string>): Promise<Map<string, string>> {
    const seen = new Map<string, string>();
    for (let i = 0; i < users.length; i += 50) {
      await Promise.all(
        users.slice(i, i + 50).map(async (user) => {
          const first = await get(url, headersOf(user));
          const second = await get(url, headersOf(user));
          expect(second.version, user).toBe(first.version);
          seen.set(user, first.version);
        }),
      );
    }
    return seen;
  }
  const canaryUsers = (seen: Map<string, string>): Set<string> => new Set([...seen].filter(([, v]) => v === 'v2').map(([u]) => u));

  it('keeps each user on one version, and raising the weight 20 -> 50 % only moves users from baseline to canary', async () => {
    const r = await routerAt('20', { CANARY_GATE_ROUTER_STICKY_HEADER: 'x-user-id', CANARY_GATE_ROUTER_STICKY_COOKIE: 'uid' });
    const byHeader = (user: string) => ({ 'x-user-id': user });
    const at20 = await versionsOf(r.url, byHeader);
    // The same users through the cookie land on the same versions: the key, not the carrier, decides.
    expect(await versionsOf(r.url, (user) => ({ cookie: `theme=dark; uid=${user}` }))).toEqual(at20);

    await r.flags.reset('test', 'next step', '50', Date.now());
    await eventually(() => (r.router.status().weightPercent === 50 ? true : undefined), 5000, 'the weight at 50');
    const at50 = await versionsOf(r.url, byHeader);

    const before = canaryUsers(at20);
    const after = canaryUsers(at50);
    const backToBaseline = [...before].filter((u) => !after.has(u));
    const moved = [...after].filter((u) => !before.has(u));
    const [low20, high20] = binomialInterval(users.length, 0.2);
    const [low50, high50] = binomialInterval(users.length, 0.5);
    console.log(
      `sticky, ${users.length} users: canary users at 20 % ${before.size} [${low20}, ${high20}], at 50 % ${after.size} [${low50}, ${high50}]; moved to the canary ${moved.length}, back to the baseline ${backToBaseline.length}`,
    );
    expect(backToBaseline).toEqual([]);
    expect(before.size).toBeGreaterThanOrEqual(low20);
    expect(before.size).toBeLessThanOrEqual(high20);
    expect(after.size).toBeGreaterThanOrEqual(low50);
    expect(after.size).toBeLessThanOrEqual(high50);
  });
});

describe('following the flag', () => {
  it("takes the gate's events at once, before the next poll (poll interval 1 h)", async () => {
    const r = await routerAt('10', { CANARY_GATE_ROUTER_POLL_INTERVAL: '1h' });
    await eventually(() => (r.router.status().subscribed ? true : undefined), 5000, 'the subscription');
    expect(r.router.status()).toMatchObject({ weightPercent: 10, reads: { poll: 1, event: 0 } });

    // A reset that sets the flag publishes an event: the router reads the flag on it.
    await r.flags.reset('test', 'promote by hand', '60', Date.now());
    await eventually(() => (r.router.status().weightPercent === 60 ? true : undefined), 5000, 'the weight at 60');
    expect(r.router.status().reads).toEqual({ poll: 1, event: 1 });

    // So does a rollback: the flag goes to 0 and every request to the baseline.
    const outcome = await r.flags.rollback(
      manualDecision({ reason: 'test rollback', by: 'test', atMs: Date.now(), configHash: 'test' }),
      0,
    );
    expect(outcome).toBe('written');
    await eventually(() => (r.router.status().weightPercent === 0 ? true : undefined), 5000, 'the weight at 0');
    expect(r.router.status().reads.poll).toBe(1);
    expect(await split(r.url, 200)).toEqual({ v1: 200, v2: 0, wrong: 0 });
    expect(await scrape(r.adminUrl, 'canary_gate_router_flag_reads_total{trigger="event"}')).toBe(2);
  });

  it('takes a flag set without an event (by hand, another tool) at the next poll', async () => {
    const r = await routerAt('10', { CANARY_GATE_ROUTER_POLL_INTERVAL: '200ms' });
    expect(r.router.status().weightPercent).toBe(10);
    await redis.set(r.flagKey, '70');
    // Order, not time: once two more polls have completed, one of them started after the SET, and it has seen it.
    const polled = r.router.status().reads.poll;
    await eventually(() => (r.router.status().reads.poll >= polled + 2 ? true : undefined), 10_000, 'two more polls');
    expect(r.router.status().weightPercent).toBe(70);
    expect(r.router.status().reads.event).toBe(0);
    const n = 1000;
    const counts = await split(r.url, n);
    const [low, high] = binomialInterval(n, 0.7);
    console.log(`after a SET to 70 % and two polls: v2 ${counts.v2} of ${n}, 99.9 % interval [${low}, ${high}]`);
    expect(counts.v2).toBeGreaterThanOrEqual(low);
    expect(counts.v2).toBeLessThanOrEqual(high);
  });
});
