/**
 * Two services on one Redis with the default config: each has its own flag (`feature:{<service>}:v2_traffic_percentage`),
 * so one service's rollback leaves the other's canary at its percentage. The same two fleets with one shared flag key
 * (the default before 0.2) show what the default prevents: the second service's canary is zeroed too.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, expect, it } from 'vitest';
import { serviceKeys } from '../../src/core/keys.ts';
import { client, dropService, eventually, REDIS_URL, uniqueService } from '../helpers/redis.ts';
import { startHaFleet, startLoad, type HaFleet } from './ha-fleet.ts';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanups.splice(0).reverse()) await step().catch(() => undefined);
});

/** Fleets of `a` (its canary fails) and `b` (healthy) on the machine's Redis; returns both flags once `a` rolled back. */
async function rollBackOne(
  flagKeyEnv: Record<string, string>,
): Promise<{ a: HaFleet; b: HaFleet; flagA: string | null; flagB: string | null; auditB: unknown[] }> {
  const redis = await client();
  const [serviceA, serviceB] = [uniqueService('two-a'), uniqueService('two-b')];
  const a = await startHaFleet(serviceA, { REDIS_URL, ...flagKeyEnv });
  cleanups.push(() => a.stop());
  const b = await startHaFleet(serviceB, { REDIS_URL, ...flagKeyEnv });
  cleanups.push(() => b.stop());
  cleanups.push(async () => {
    await dropService(redis, 'canary-gate', serviceA, a.config.flag.key);
    await dropService(redis, 'canary-gate', serviceB, b.config.flag.key);
    redis.disconnect();
  });
  await redis.set(b.config.flag.key, '30');
  await redis.set(a.config.flag.key, '30');
  a.canaryApp.handle((_req, res) => {
    res.writeHead(500);
    res.end('boom');
  });
  const load = startLoad([...a.proxies, ...b.proxies]);
  cleanups.push(() => load.stop());
  await eventually(() => (a.sidecars.some((s) => s.status().latch !== null) ? true : undefined), 15_000, "service a's rollback");
  // Service b keeps judging after a's rollback.
  const judged = b.evaluations.length;
  await eventually(() => (b.evaluations.slice(judged).some((e) => e.event.verdict !== null) ? true : undefined), 5000, "b's next verdict");
  return {
    a,
    b,
    flagA: await redis.get(a.config.flag.key),
    flagB: await redis.get(b.config.flag.key),
    auditB: await redis.xrange(serviceKeys('canary-gate', serviceB).audit, '-', '+'),
  };
}

it("with the default flag key, one service's rollback leaves the other's flag and latch untouched", async () => {
  const { a, b, flagA, flagB, auditB } = await rollBackOne({});
  expect(a.config.flag.key).toBe(`feature:{${a.config.service}}:v2_traffic_percentage`);
  expect(flagA).toBe('0');
  expect(flagB).toBe('30');
  expect(b.sidecars.map((s) => s.status().latch)).toEqual([null, null, null]);
  expect(auditB).toEqual([]);
}, 40_000);

it('with one flag key shared by both services (the default before 0.2), the rollback zeroes the other canary too', async () => {
  const shared = `cg-test:shared-flag:${randomBytes(4).toString('hex')}`;
  const { flagA, flagB } = await rollBackOne({ CANARY_GATE_FLAG_KEY: shared });
  expect(flagA).toBe('0');
  expect(flagB).toBe('0');
}, 40_000);
