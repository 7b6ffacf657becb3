import { expect, it } from 'vitest';
import { runDemo } from '../helpers/demo.ts';

it('npm run demo: the rollout advances on evidence, v2 regresses at the 25 % step, the gate rolls it back and the rollout stays rolled_back, exit 0', async () => {
  const run = await runDemo([]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  expect(run.flag).toBe('0');
  expect(run.rollout).toMatchObject({ status: 'rolled_back', weight: 25 });
  expect(run.stdout).toMatch(/>>> rollout started at 10 % by canary-gate demo/);
  // The promotion came from the lease holder, on evidence: at least as many canary requests as needed.
  const promotion = /rollout promoted 10 % -> 25 % by demo-v[12]-0 \((\d+) canary requests, (\d+) needed; ([\d.]+) s at the weight\)/.exec(
    run.stdout,
  );
  expect(promotion).not.toBeNull();
  expect(Number(promotion![1])).toBeGreaterThanOrEqual(Number(promotion![2]));
  expect(Number(promotion![3])).toBeGreaterThanOrEqual(8);
  const afterPromotion = run.stdout.split(promotion![0])[1]!;
  expect(afterPromotion).toMatch(/^\s*\[[ \d.]+ s\] >>> v2 regresses now/);
  expect(run.stdout).toMatch(/>>> rollout rolled_back at 25 %/);
  expect(run.stdout).toContain(`ROLLED BACK: ${run.flagKey} = 0 in redis`);
  expect(run.stdout).toMatch(/"trigger": "automatic"/);
  expect(run.stdout).not.toMatch(/rollout promoted 25 %/);
  // Before the regression the gate judged and passed: the rollback is not a false positive from the start.
  const beforeRegression = run.stdout.split('>>> v2 regresses now')[0]!;
  expect(beforeRegression).toMatch(/\| pass /);
  expect(beforeRegression).not.toMatch(/\| fail /);
  const toFlag = Number(/seconds from regression to flag: ([0-9.]+)/.exec(run.stdout)?.[1]);
  expect(toFlag).toBeGreaterThan(0);
  console.log(
    `demo: ${/time per step: .*/.exec(run.stdout)?.[0]}; ${toFlag} s from regression to flag; ${run.seconds.toFixed(1)} s in all`,
  );
}, 180_000);
