/**
 * A rollback decided while Redis was unreachable waits as `pending` until this sidecar holds the lease again. Two
 * ways it must not be written late: an operator reset came after it (the reset wins), or another sidecar took the
 * lease first (that one judges the same fleet data and decides itself; the pending decision is handed over).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Evaluator } from '../../src/app/evaluator.ts';
import { judgePolicyOf } from '../../src/config/policy.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { RollbackDecision } from '../../src/core/controller.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import { flagOptionsOf, RedisFlagStore } from '../../src/flag/redis-flag-store.ts';
import { FleetReader } from '../../src/fleet/fleet-reader.ts';
import { RedisLease } from '../../src/fleet/redis-lease.ts';
import { client, dropService, silent, uniqueService } from '../helpers/redis.ts';

const service = uniqueService('pending');
const config = loadConfig({ env: { SERVICE_NAME: service, POD_NAME: 'a', POD_VERSION: 'v1', CANARY_GATE_FLAG_KEY: `flag:{${service}}` } });
const keys = serviceKeys(config.redis.keyPrefix, service);
let redis: Awaited<ReturnType<typeof client>>;

beforeAll(async () => {
  redis = await client();
});
afterAll(async () => {
  await dropService(redis, config.redis.keyPrefix, service, config.flag.key);
  redis.disconnect();
});

function evaluator(holderId: string): Evaluator {
  return new Evaluator(
    {
      holderId,
      pod: holderId,
      slots: 12,
      slotMs: config.window.slot,
      leaseTtlMs: 5000,
      policy: judgePolicyOf(config),
      consecutiveBreaches: 3,
    },
    {
      lease: new RedisLease(redis, keys),
      flags: new RedisFlagStore(redis, keys, flagOptionsOf(config.flag)),
      source: new FleetReader(redis, keys, config.versions, config.window.slot, config.window.slots),
      clock: () => Date.now(),
      logger: silent,
    },
  );
}

const decision = (atMs: number): RollbackDecision => ({
  state: 'rolled_back',
  trigger: 'automatic',
  reason: 'redis unreachable (policy.noData.redisUnreachable: rollback)',
  checks: [],
  baseline: null,
  canary: null,
  consecutiveBreaches: 3,
  atMs,
  at: new Date(atMs).toISOString(),
  by: 'a',
});

it('drops a pending decision that an operator reset came after, and writes one that no reset came after', async () => {
  await redis.del(keys.lease, keys.decision, keys.reset, config.flag.key);
  const e = evaluator('a/1');
  await e.renewLease();
  expect(e.status().holding).toBe(true);
  const decidedMs = Date.now() - 2000;
  e.queueDecision(decision(decidedMs));
  await new RedisFlagStore(redis, keys, flagOptionsOf(config.flag)).reset('oncall', 'fixed', '10', decidedMs + 1000);
  expect(await e.writePending()).toBeNull();
  expect(e.status().pending).toBeNull();
  expect(await redis.get(config.flag.key)).toBe('10');

  e.queueDecision(decision(Date.now()));
  expect(await e.writePending()).not.toBeNull();
  expect(await redis.get(config.flag.key)).toBe('0');
  await e.releaseLease();
});

it('hands a pending decision over when another sidecar holds the lease, so it is never written late', async () => {
  await redis.del(keys.lease, keys.decision, keys.reset, config.flag.key);
  const old = evaluator('a/2');
  old.queueDecision(decision(Date.now()));
  const other = evaluator('b/1');
  await other.renewLease();
  expect(other.status().holding).toBe(true);
  await old.renewLease();
  expect(old.status().holding).toBe(false);
  expect(old.status().holder).toBe('b/1');
  expect(old.status().pending).toBeNull();
  // Even once the lease comes back to it, there is nothing left to write.
  await other.releaseLease();
  await old.renewLease();
  expect(old.status().holding).toBe(true);
  expect(await old.writePending()).toBeNull();
  expect(await redis.get(config.flag.key)).toBeNull();
  await old.releaseLease();
});
