/**
 * A short soak (about 110 s; `npm run soak` runs 10 minutes): four sidecar processes under paced mixed load through
 * Redis paused, Redis killed and restarted, the lease holder SIGKILLed and respawned, and app connection resets; then
 * a canary regression. Asserts the criteria of test/soak/soak.ts from what the run returned, never from wall-clock time.
 */
import { expect, it } from 'vitest';
import { runSoak } from './soak.ts';

it('keeps serving, recovers from every fault, stays within memory and lag bounds, and rolls the regression back once', async () => {
  const result = await runSoak({ durationMs: 90_000, verbose: false });
  console.log(JSON.stringify({ load: result.load, faults: result.faults, sidecars: result.sidecars, rollbacks: result.rollbacks }));
  for (const c of result.criteria) console.log(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
  expect(result.load.failed).toEqual({});
  expect(result.faults.map((f) => f.fault)).toEqual(['redis_pause', 'redis_restart', 'evaluator_kill', 'app_resets']);
  expect(result.faults.every((f) => f.recoveredAfterS !== null)).toBe(true);
  expect(result.rollbacksBeforeRegression).toBe(0);
  expect(result.rollbacksAfterRegression).toBe(1);
  expect(result.decisionsLost).toBe(0);
  expect(result.flag).toBe('0');
  expect(result.criteria.filter((c) => !c.ok)).toEqual([]);
}, 240_000);
