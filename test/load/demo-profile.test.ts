/**
 * A profile with a `demo` section starts the demo fleet (against a private redis-server), sends its load to the
 * fleet's router, regresses v2 on cue and watches the flag and the gate; it refuses a --target of its own.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRedisServer } from '../../src/demo/find-redis.ts';
import { parseProfile } from '../../src/load/profile.ts';
import { runProfile, type LoadResult } from '../../src/load/run.ts';

const PROFILE =
  'name: demo-tiny\nconnections: 4\nrate: 100\nduration: 5s\nrequests:\n  - { path: /api/items }\ndemo:\n  regressAt: 2s\n  startPercentage: 20\n';

let redis: Awaited<ReturnType<typeof startRedisServer>>;
let result: LoadResult;

beforeAll(async () => {
  redis = await startRedisServer();
  result = await runProfile(parseProfile(PROFILE, 'demo-tiny.yaml'), { env: { REDIS_URL: redis.url } });
});

afterAll(async () => {
  await redis?.stop();
});

it('loads the fleet through its router, both versions by their answers', () => {
  expect(result.stopReason).toBe('completed');
  expect(result.target).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(Object.keys(result.versions).sort()).toEqual(['v1', 'v2']);
  expect(result.versions.v2!.requests).toBeGreaterThan(0);
  expect(result.versions.v1!.requests).toBeGreaterThan(result.versions.v2!.requests);
  expect(result.demo!.routed.canary).toBeGreaterThanOrEqual(result.versions.v2!.requests);
});

it('regresses v2 on cue and records when', () => {
  expect(result.demo!.regressAtS).not.toBeNull();
  expect(result.events.map((e) => e.kind)).toContain('regression');
  const at = result.events.find((e) => e.kind === 'regression')!.tS;
  const before = result.timeline.filter((p) => p.tS <= at && p.versions.v2).map((p) => p.versions.v2!.p50Ms);
  // The gate may roll v2 back within a second of the regression (the router then sends it nothing): every interval
  // after the cue counts, and the first seconds through freshly started sidecars are slower than steady state, so
  // v2's regressed median is compared with its best healthy second.
  const after = result.timeline.filter((p) => p.tS > at && p.versions.v2).map((p) => p.versions.v2!.p50Ms);
  expect(before.length).toBeGreaterThan(0);
  expect(after.length).toBeGreaterThan(0);
  // The regression moves v2's median from 20 ms to 50 ms.
  expect(Math.max(...after)).toBeGreaterThan(1.5 * Math.min(...before));
});

it("watches the rollout's flag and the gate's verdicts", () => {
  expect(result.flag).toMatchObject({ key: 'feature:{demo-api}:v2_traffic_percentage', rollbackValue: '0', first: '20' });
  expect(result.timeline.every((p) => p.flag !== undefined)).toBe(true);
  const gate = result.timeline.map((p) => p.gate).filter((g) => g);
  expect(gate.length).toBeGreaterThan(0);
  expect(gate[0]).toMatchObject({ baseline: { version: 'v1' }, canary: { version: 'v2' } });
});

it('refuses a --target for a profile that starts its own fleet', async () => {
  await expect(
    runProfile(parseProfile(PROFILE, 'demo-tiny.yaml'), { target: 'http://127.0.0.1:8080', env: { REDIS_URL: redis.url } }),
  ).rejects.toThrow(/starts its own demo fleet/);
});
