import { expect, it } from 'vitest';
import { runDemoProcess } from '../helpers/demo.ts';

it('npm run demo: v2 regresses, the flag goes to 0 in Redis, the decision record is printed, exit 0', async () => {
  const run = await runDemoProcess([], 120_000);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  expect(run.flag).toBe('0');
  expect(run.stdout).toContain('rollout started: feature:{demo-api}:v2_traffic_percentage = 10');
  expect(run.stdout).toContain('>>> v2 regresses now');
  expect(run.stdout).toContain('ROLLED BACK: feature:{demo-api}:v2_traffic_percentage = 0 in redis');
  expect(run.stdout).toMatch(/"trigger": "automatic"/);
  const seconds = Number(/seconds from regression to flag: ([0-9.]+)/.exec(run.stdout)?.[1]);
  expect(seconds).toBeGreaterThan(0);
  console.log(`demo: ${seconds} s from regression to flag`);
  // Before the regression the gate judged and passed: the rollback is not a false positive from the start.
  const beforeRegression = run.stdout.split('>>> v2 regresses now')[0]!;
  expect(beforeRegression).toMatch(/\| pass /);
  expect(beforeRegression).not.toMatch(/\| fail /);
}, 150_000);
