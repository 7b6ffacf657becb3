import { expect, it } from 'vitest';
import { judgePolicyOf } from '../../src/config/policy.ts';
import { loadConfig } from '../../src/config/load.ts';
import { DEFAULT_JUDGE_POLICY } from '../../src/core/judge.ts';

it("the config's default policy is the judge's default policy (the two cannot drift apart)", () => {
  expect(judgePolicyOf(loadConfig({ env: {} }))).toEqual(DEFAULT_JUDGE_POLICY);
});

it('converts the absolute p95 threshold from ms (config) to µs (judge)', () => {
  const config = loadConfig({ env: { CANARY_GATE_POLICY_LATENCY_ABSOLUTE_P95: '750ms' } });
  expect(judgePolicyOf(config).latency.absoluteP95Us).toBe(750_000);
});
