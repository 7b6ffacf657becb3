/** The rollout config section: Argo Rollouts' step vocabulary in YAML, the same steps as text from the environment, and each bad step named with its path and reason. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { CanaryGateError } from '../../src/core/errors.ts';
import { rolloutStages } from '../../src/core/rollout-plan.ts';

function fromYaml(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'cg-rollout-'));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, text);
  return loadConfig({ file, env: {} });
}

function problems(env: Record<string, string>): readonly string[] {
  try {
    loadConfig({ env });
  } catch (err) {
    if (err instanceof CanaryGateError) return err.details;
    throw err;
  }
  return [];
}

describe('rollout config', () => {
  it('defaults to 1, 5, 25, 50, 100 % with 5 min at each weight', () => {
    const c = loadConfig({ env: {} });
    expect(rolloutStages(c.rollout.steps, c.rollout.minStepTime)).toEqual(
      [1, 5, 25, 50, 100].map((weight) => ({ weight, minMs: weight === 100 ? 0 : 300_000, waitForPerson: false })),
    );
  });

  it('reads setWeight, pause with a duration and pause {} from YAML', () => {
    const c = fromYaml(
      'rollout:\n  minStepTime: 30s\n  steps:\n    - setWeight: 10\n    - pause: {duration: 10m}\n    - setWeight: 50\n    - pause: {}\n',
    );
    expect(c.rollout.steps).toEqual([
      { setWeight: 10 },
      { pause: { durationMs: 600_000 } },
      { setWeight: 50 },
      { pause: { durationMs: null } },
    ]);
    expect(rolloutStages(c.rollout.steps, c.rollout.minStepTime).map((s) => [s.weight, s.minMs, s.waitForPerson])).toEqual([
      [10, 600_000, false],
      [50, 30_000, true],
      [100, 0, false],
    ]);
  });

  it('reads the same steps as text from the environment', () => {
    const c = loadConfig({ env: { CANARY_GATE_ROLLOUT_STEPS: '5, pause 10s, 25%, pause, 100' } });
    expect(c.rollout.steps).toEqual([
      { setWeight: 5 },
      { pause: { durationMs: 10_000 } },
      { setWeight: 25 },
      { pause: { durationMs: null } },
      { setWeight: 100 },
    ]);
  });

  it.each([
    ['0,5', /rollout\.steps\.0: setWeight must be at least 1/],
    ['5,pause,3', /rollout\.steps\.2: weights must rise: 3 after 5/],
    ['pause,5', /rollout\.steps\.0: the first step must be a setWeight/],
    ['5,pause forever', /rollout\.steps\.1: pause\.duration must be a positive duration/],
    ['5,abc', /rollout\.steps\.1: setWeight must be an integer percentage 0\.\.100/],
    ['101', /rollout\.steps\.0: setWeight must be an integer percentage 0\.\.100 \(got 101\)/],
    ['2.5', /setWeight must be an integer percentage/],
  ])('refuses steps %s with the field and the reason', (steps, message) => {
    expect(problems({ CANARY_GATE_ROLLOUT_STEPS: steps }).join('\n')).toMatch(message);
  });

  it('refuses a step that is neither a weight nor a pause', () => {
    expect(() => fromYaml('rollout:\n  steps:\n    - setWeight: 5\n    - analysis: {}\n')).toThrow(CanaryGateError);
  });
});
