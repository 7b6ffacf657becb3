/**
 * The no-data truth table (README, "No data"): each cause with its default action, each action configurable, and the
 * sample-ratio mismatch check. One row, one test.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_JUDGE_POLICY as SEQUENTIAL_POLICY, judge, type JudgePolicy, unreadableVerdict } from '../../src/core/judge.ts';
import type { Verdict } from '../../src/core/verdict.ts';
import type { WindowSnapshot } from '../../src/core/window.ts';
import { piecewiseQuantile } from '../helpers/snapshots.ts';

/** These cases pin the window method (per-window Bonferroni tests); the sequential method has its own tests. */
const DEFAULT_JUDGE_POLICY: JudgePolicy = { ...SEQUENTIAL_POLICY, statistics: { ...SEQUENTIAL_POLICY.statistics, method: 'window' } };

function snap(version: string, requests: number, slotsReported = 12, errors = 0): WindowSnapshot {
  const p50 = requests > 0 ? 40_000 : Number.NaN;
  return {
    version,
    requests,
    errors,
    errorRatio: requests > 0 ? errors / requests : Number.NaN,
    p50Us: p50,
    p95Us: 2 * p50,
    p99Us: 3 * p50,
    requestsPerSecond: requests / 60,
    windowMs: 60_000,
    pods: slotsReported > 0 ? 2 : 0,
    slotsReported,
    quantileUs: piecewiseQuantile(p50, 2 * p50, 3 * p50),
  };
}
const with_ = (noData: Partial<JudgePolicy['noData']>): JudgePolicy => ({
  ...DEFAULT_JUDGE_POLICY,
  noData: { ...DEFAULT_JUDGE_POLICY.noData, ...noData },
});
const checkNames = (v: Verdict): string[] => v.checks.map((c) => c.check);

describe('no-data truth table, default actions', () => {
  it('no traffic to either version: hold (inconclusive), only the no_data check', () => {
    const v = judge(DEFAULT_JUDGE_POLICY, snap('v1', 0), snap('v2', 0), 0, { flagPercent: 5 });
    expect(v.outcome).toBe('inconclusive');
    expect(checkNames(v)).toEqual(['no_data']);
    expect(v.reason).toBe('no traffic to either version in the window: hold (policy.noData.noTraffic)');
  });

  it('canary pods not reporting while the flag gives the canary 5 %: rollback (a failing evaluation)', () => {
    const v = judge(DEFAULT_JUDGE_POLICY, snap('v1', 6000), snap('v2', 0, 0), 0, { flagPercent: 5 });
    expect(v.outcome).toBe('fail');
    expect(checkNames(v)).toEqual(['no_data']);
    expect(v.reason).toBe(
      'no slots from any canary pod while the flag gives the canary traffic (flag 5 %): rollback (policy.noData.canaryMissing)',
    );
  });

  it('canary pods not reporting with the flag at 0 % or unset: held whatever the action, no rollout is under way', () => {
    for (const flagPercent of [0, null]) {
      const v = judge(DEFAULT_JUDGE_POLICY, snap('v1', 6000), snap('v2', 0, 0), 0, { flagPercent });
      expect(v.outcome).toBe('inconclusive');
      expect(v.reason).toMatch(/no rollout to judge/);
    }
  });

  it('baseline missing: hold for the relative checks, the absolute checks still judge the canary', () => {
    const v = judge(DEFAULT_JUDGE_POLICY, snap('v1', 0, 0), snap('v2', 500, 12, 250), 0, { flagPercent: 50 });
    expect(checkNames(v)).toEqual(['no_data', 'latency_p95_absolute', 'error_ratio_absolute']);
    expect(v.checks[0]).toMatchObject({
      outcome: 'inconclusive',
      reason: 'no slots from any baseline pod: hold (policy.noData.baselineMissing)',
    });
    expect(v.outcome).toBe('fail'); // 50 % errors: the absolute error check fails on its own
  });

  it('Redis unreachable: hold', () => {
    const v = unreadableVerdict(DEFAULT_JUDGE_POLICY, 5000, 'Connection is closed.');
    expect(v).toMatchObject({ outcome: 'inconclusive', atMs: 5000 });
    expect(v.reason).toBe(
      'Redis unreachable: the fleet window could not be read (Connection is closed.): hold (policy.noData.redisUnreachable)',
    );
  });
});

describe('no-data actions are configurable', () => {
  it.each([
    ['noTraffic', 'rollback', () => judge(with_({ noTraffic: 'rollback' }), snap('v1', 0), snap('v2', 0), 0), 'fail'],
    [
      'canaryMissing',
      'pass',
      () => judge(with_({ canaryMissing: 'pass' }), snap('v1', 6000), snap('v2', 0, 0), 0, { flagPercent: 5 }),
      'pass',
    ],
    ['baselineMissing', 'rollback', () => judge(with_({ baselineMissing: 'rollback' }), snap('v1', 0, 0), snap('v2', 500), 0), 'fail'],
    ['redisUnreachable', 'rollback', () => unreadableVerdict(with_({ redisUnreachable: 'rollback' }), 0, 'timeout'), 'fail'],
    ['redisUnreachable', 'pass', () => unreadableVerdict(with_({ redisUnreachable: 'pass' }), 0, 'timeout'), 'pass'],
  ] as const)('%s: %s', (_cause, _action, run, expected) => {
    expect(run().outcome).toBe(expected);
  });
});

describe('traffic share (sample-ratio mismatch)', () => {
  it('a share that matches the flag is judged as usual', () => {
    const v = judge(DEFAULT_JUDGE_POLICY, snap('v1', 5700), snap('v2', 300), 0, { flagPercent: 5 });
    expect(checkNames(v)).not.toContain('traffic_share');
    expect(v.outcome).toBe('pass');
  });

  it('a canary seeing 1 % when the flag says 5 %: inconclusive, relative checks held, with the p-value', () => {
    const v = judge(DEFAULT_JUDGE_POLICY, snap('v1', 5940), snap('v2', 60), 0, { flagPercent: 5 });
    expect(checkNames(v)[0]).toBe('traffic_share');
    expect(v.outcome).toBe('inconclusive');
    expect(v.checks[0]!.reason).toMatch(
      /sample-ratio mismatch: the canary has 1\.00 % of 6000 requests, the flag gives it 5 % \(chi-square p = .* < 0\.0005\)/,
    );
    expect(v.checks.filter((c) => c.check.endsWith('_relative')).every((c) => c.outcome === 'inconclusive')).toBe(true);
  });

  it('a mismatch does not hide an absolute failure', () => {
    const v = judge(DEFAULT_JUDGE_POLICY, snap('v1', 5940), snap('v2', 60, 12, 40), 0, { flagPercent: 5 });
    expect(v.outcome).toBe('fail');
  });

  it('is off with trafficShareAlpha 0, and without a known flag', () => {
    expect(
      checkNames(judge({ ...DEFAULT_JUDGE_POLICY, trafficShareAlpha: 0 }, snap('v1', 5940), snap('v2', 60), 0, { flagPercent: 5 })),
    ).not.toContain('traffic_share');
    expect(checkNames(judge(DEFAULT_JUDGE_POLICY, snap('v1', 5940), snap('v2', 60), 0, { flagPercent: null }))).not.toContain(
      'traffic_share',
    );
  });
});
