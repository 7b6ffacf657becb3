/**
 * The published verdict on a real Redis: written only under the lease's current fencing token, with a TTL of a few
 * slots, NaN figures as null, and a record that does not parse read as none.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { initialState } from '../../src/core/controller.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import { noFigures, type Verdict } from '../../src/core/verdict.ts';
import { RedisLease } from '../../src/fleet/redis-lease.ts';
import { RedisVerdictStore, verdictTtlMs } from '../../src/integrations/verdict-store.ts';
import { client, dropService, uniqueService } from '../helpers/redis.ts';

const none = noFigures('v1');
const verdict: Verdict = {
  outcome: 'pass',
  atMs: 1000,
  checks: [],
  baseline: none,
  canary: { ...none, version: 'v2' },
  reason: 'all checks pass',
};
const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function setup() {
  const service = uniqueService('verdict');
  const redis = await client();
  cleanup.push(async () => {
    await dropService(redis, 'cg-test', service);
    redis.disconnect();
  });
  const keys = serviceKeys('cg-test', service);
  const store = new RedisVerdictStore(redis, keys, { service, baseline: 'v1', canary: 'v2', advisory: false }, 1500, () => 42);
  return { redis, keys, store, lease: new RedisLease(redis, keys) };
}

describe('RedisVerdictStore', () => {
  it('writes under the current fencing token with the TTL, and refuses a stale holder', async () => {
    const { redis, keys, store, lease } = await setup();
    const held = { holder: 'a/1', state: initialState(0), latch: null, verdict };
    expect(await store.publish({ ...held, fencingToken: 1 })).toBe(false); // no lease at all
    const token = await lease.acquire('a/1', 5000);
    expect(await store.publish({ ...held, fencingToken: token })).toBe(true);
    const pttl = await redis.pttl(keys.verdict);
    expect(pttl).toBeGreaterThan(1000);
    expect(pttl).toBeLessThanOrEqual(1500);
    const read = await store.read();
    expect(read).toMatchObject({
      service: expect.any(String),
      baseline: 'v1',
      canary: 'v2',
      holder: 'a/1',
      fencingToken: token,
      writtenAtMs: 42,
    });
    expect(read!.verdict.baseline.p95Ms).toBeNull();

    // A new holder takes over; the old one (paused, then back) cannot overwrite its verdict.
    await lease.release('a/1');
    const next = await lease.acquire('b/2', 5000);
    expect(next).toBeGreaterThan(token);
    expect(await store.publish({ ...held, holder: 'b/2', fencingToken: next, verdict: { ...verdict, reason: 'new' } })).toBe(true);
    expect(await store.publish({ ...held, fencingToken: token, verdict: { ...verdict, reason: 'stale' } })).toBe(false);
    expect((await store.read())!.verdict.reason).toBe('new');
  });

  it('reads a record that does not parse as none, and forgets on clear', async () => {
    const { redis, keys, store } = await setup();
    await redis.set(keys.verdict, '{"verdict": 3}');
    expect(await store.read()).toBeNull();
    await redis.set(keys.verdict, 'not json');
    expect(await store.read()).toBeNull();
    await store.clear();
    expect(await redis.exists(keys.verdict)).toBe(0);
  });

  it.each([
    [250, 1000, 100, 1100],
    [5000, 15_000, 1000, 16_000],
    [5000, 6000, 1000, 16_000],
  ])('lives max(3 slots, lease TTL) + delay: slot %d ms, lease %d ms, delay %d ms -> %d ms', (slot, lease, delay, ttl) => {
    expect(verdictTtlMs(slot, lease, delay)).toBe(ttl);
  });
});
