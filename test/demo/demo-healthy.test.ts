import { expect, it } from 'vitest';
import { runDemo } from '../helpers/demo.ts';

it('npm run demo -- --healthy: the lease holder promotes a healthy v2 through 10, 25 and 50 % to 100 % on evidence, exit 0', async () => {
  const run = await runDemo(['--healthy']);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  expect(run.flag).toBe('100');
  expect(run.rollout).toMatchObject({ status: 'completed', weight: 100 });
  expect(run.stdout).toContain(`ROLLOUT COMPLETED: ${run.flagKey} = 100 in redis`);
  expect(run.stdout).not.toContain('ROLLED BACK');
  // Every promotion on evidence: as many canary requests as the checks need, and the least time at the weight.
  const promotions = [
    ...run.stdout.matchAll(/rollout (promoted|completed) (\d+) % -> (\d+) % by \S+ \((\d+) canary requests, (\d+) needed; ([\d.]+) s/g),
  ];
  expect(promotions.map((m) => [m[1], m[2], m[3]])).toEqual([
    ['promoted', '10', '25'],
    ['promoted', '25', '50'],
    ['completed', '50', '100'],
  ]);
  for (const m of promotions) {
    expect(Number(m[4])).toBeGreaterThanOrEqual(Number(m[5]));
    expect(Number(m[6])).toBeGreaterThanOrEqual(8);
  }
  // While it waited, the demo showed the evidence still needed.
  expect(run.stdout).toMatch(/\| 10 %: \d+ more canary requests/);
  console.log(
    `healthy demo: ${/time per step: .*/.exec(run.stdout)?.[0]}; ${/([\d.]+) s after the demo started/.exec(run.stdout)?.[1]} s to completion; ${run.seconds.toFixed(1)} s in all`,
  );
}, 180_000);
