/**
 * On-demand judgements on a real Redis: requests for the same pair and window share one read, and at most
 * ON_DEMAND_CONCURRENCY windows are read and decoded at once.
 */
import { afterEach, expect, it } from 'vitest';
import { DEFAULT_JUDGE_POLICY } from '../../src/core/judge.ts';
import { serviceKeys } from '../../src/core/keys.ts';
import type { Redis } from '../../src/fleet/redis-client.ts';
import { ON_DEMAND_CONCURRENCY, onDemandJudge } from '../../src/integrations/judgement.ts';
import { client, sleep, uniqueService } from '../helpers/redis.ts';

const cleanup: Redis[] = [];
afterEach(() => {
  for (const r of cleanup.splice(0)) r.disconnect();
});

/** A client whose pipelines are counted (started, and the most at once), each held 30 ms so that they overlap. */
async function countingClient() {
  const redis = await client();
  cleanup.push(redis);
  const seen = { started: 0, running: 0, most: 0 };
  const pipeline = redis.pipeline.bind(redis);
  redis.pipeline = ((commands: never) => {
    const p = pipeline(commands);
    const exec = p.exec.bind(p);
    p.exec = (async () => {
      seen.started++;
      seen.running++;
      seen.most = Math.max(seen.most, seen.running);
      try {
        await sleep(30);
        return await exec();
      } finally {
        seen.running--;
      }
    }) as never;
    return p;
  }) as never;
  return { redis, seen };
}

const options = {
  versions: { baseline: 'v1', canary: 'v2' },
  policy: DEFAULT_JUDGE_POLICY,
  advisory: true,
  slotMs: 1000,
  slots: 4,
  delayMs: 100,
  evaluates: false,
};

it('shares one read among requests for the same pair and window', async () => {
  const { redis, seen } = await countingClient();
  const judge = onDemandJudge(redis, serviceKeys('cg-test', uniqueService('ondemand')), options);
  const verdicts = await Promise.all(Array.from({ length: 5 }, () => judge({ baseline: 'a', canary: 'b' }, 100)));
  expect(seen.started).toBe(2); // one read: HLEN of the window's hashes, then HGETALL (a fresh reader fetches them all)
  expect(new Set(verdicts).size).toBe(1);
  expect(verdicts[0]!.outcome).toBe('inconclusive');
  await judge({ baseline: 'a', canary: 'b' }, 100);
  expect(seen.started).toBe(4); // once settled, the next request reads again
});

it(`reads at most ${ON_DEMAND_CONCURRENCY} windows at once`, async () => {
  const { redis, seen } = await countingClient();
  const judge = onDemandJudge(redis, serviceKeys('cg-test', uniqueService('ondemand')), options);
  await Promise.all(Array.from({ length: 6 }, (_, i) => judge({ baseline: `a${i}`, canary: 'b' }, 100)));
  expect(seen.started).toBe(12);
  expect(seen.most).toBe(ON_DEMAND_CONCURRENCY);
});
