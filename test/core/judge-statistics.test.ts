/**
 * The judge's bounded-error mode (policy.statistics.enabled, the default): the exact bounds it rests on, its false
 * rollback rate on healthy canaries (simulated, seeded, on real HDR histograms), the low-traffic case where
 * the thresholds-only rule fires on noise, its power against real regressions, and its explanations.
 */
import lognormal from '@stdlib/random-base-lognormal';
import randu from '@stdlib/random-base-randu';
import { afterAll, describe, expect, it } from 'vitest';
import { createHistogram, type Histogram, quantileUs, recordLatency } from '../../src/core/histogram.ts';
import { DEFAULT_JUDGE_POLICY as SEQUENTIAL_POLICY, judge, type JudgePolicy } from '../../src/core/judge.ts';
import {
  evaluationAlpha,
  lowerRateBound,
  quantileUpperLevel,
  sampleRatioPValue,
  shareAbove,
  testRateAbove,
  upperRateBound,
} from '../../src/core/statistics.ts';
import type { CheckName, Verdict } from '../../src/core/verdict.ts';
import type { WindowSnapshot } from '../../src/core/window.ts';
import { THRESHOLDS_ONLY } from '../helpers/snapshots.ts';

/** These cases pin the window method (per-window Bonferroni tests); the sequential method has its own tests. */
const DEFAULT_JUDGE_POLICY: JudgePolicy = { ...SEQUENTIAL_POLICY, statistics: { ...SEQUENTIAL_POLICY.statistics, method: 'window' } };

describe('exact bounds', () => {
  it('Clopper–Pearson bounds match published values and bracket the observed rate', () => {
    // 95 % two-sided interval of 5 successes in 10 trials: [0.1871, 0.8129] (Clopper & Pearson's tables).
    expect(lowerRateBound(5, 10, 0.025)).toBeCloseTo(0.1871, 4);
    expect(upperRateBound(5, 10, 0.025)).toBeCloseTo(0.8129, 4);
    // 0 of n: the upper bound is 1 - alpha^(1/n) exactly.
    expect(upperRateBound(0, 100, 0.05)).toBeCloseTo(1 - 0.05 ** (1 / 100), 10);
    expect(lowerRateBound(0, 100, 0.05)).toBe(0);
    expect(upperRateBound(100, 100, 0.05)).toBe(1);
    expect(lowerRateBound(3, 0, 0.05)).toBeNaN();
  });

  it('a test is significant only when the lower bound clears the tolerated rate, and says how many requests it needs', () => {
    const alpha = 1e-6;
    expect(testRateAbove(60, 100, 0.05, alpha)).toMatchObject({ significant: true, neededTrials: 0 });
    expect(testRateAbove(2, 100, 0.05, alpha)).toMatchObject({ significant: false, neededTrials: null });
    const pending = testRateAbove(2, 20, 0.05, alpha);
    expect(pending.significant).toBe(false);
    expect(pending.neededTrials).toBeGreaterThan(0);
    // At the same 10 % rate, that many more requests decide it, and one fewer does not.
    const m = 20 + pending.neededTrials!;
    expect(testRateAbove(Math.round(0.1 * m), m, 0.05, alpha).significant).toBe(true);
    expect(testRateAbove(Math.round(0.1 * (m - 1)), m - 1, 0.05, alpha).significant).toBe(false);
  });

  it('the quantile upper level covers the true p95 at the stated rate (simulated)', () => {
    const uniform = randu.factory({ seed: 7 });
    const alpha = 0.05;
    const n = 400;
    const level = quantileUpperLevel(n, 0.95, alpha);
    expect(level).toBeGreaterThan(0.95);
    let misses = 0;
    const runs = 2000;
    for (let r = 0; r < runs; r++) {
      const sample = Array.from({ length: n }, () => uniform()).sort((a, b) => a - b);
      // Uniform(0, 1): the true p95 is 0.95. The bound is the order statistic of rank level x n.
      if (sample[Math.round(level * n) - 1]! < 0.95) misses++;
    }
    expect(misses / runs).toBeLessThanOrEqual(alpha + 0.015);
    expect(quantileUpperLevel(20, 0.95, 1e-6)).toBeNaN();
  });

  it('shareAbove inverts a quantile function', () => {
    expect(shareAbove((q) => q * 1000, 900)).toBeCloseTo(0.1, 9);
    expect(shareAbove((q) => q * 1000, 1000)).toBe(0);
    expect(shareAbove((q) => 500 + q, 100)).toBe(1);
  });

  it('sample-ratio p-values: a 1 % split seen as 1 % is fine, as 0.5 % is not', () => {
    expect(sampleRatioPValue(60, 6000, 0.01)).toBeCloseTo(1, 6);
    expect(sampleRatioPValue(30, 6000, 0.01)).toBeLessThan(1e-3);
    expect(sampleRatioPValue(0, 0, 0.01)).toBeNaN();
  });

  it('Bonferroni spending: 1 % over 2 h of 5 s evaluations and 4 checks', () => {
    expect(evaluationAlpha(0.01, 5000, 2 * 3600_000, 4)).toBeCloseTo(0.01 / 1440 / 4, 15);
    expect(DEFAULT_JUDGE_POLICY.statistics.alpha).toBeCloseTo(evaluationAlpha(0.01, 5000, 2 * 3600_000, 4), 15);
  });
});

/** Seeded traffic: lognormal latencies (median ms, sigma) and Bernoulli errors, into a real HDR histogram. */
class Traffic {
  private readonly latency: () => number;
  private readonly uniform: () => number;
  private readonly errorRatio: number;
  constructor(medianMs: number, sigma: number, errorRatio: number, seed: number) {
    this.errorRatio = errorRatio;
    this.latency = lognormal.factory(Math.log(medianMs * 1000), sigma, { seed });
    this.uniform = randu.factory({ seed: seed + 1000 });
  }
  window(version: string, requests: number, histograms: Histogram[]): WindowSnapshot {
    const h = createHistogram();
    histograms.push(h);
    let errors = 0;
    for (let i = 0; i < requests; i++) {
      recordLatency(h, this.latency());
      if (this.uniform() < this.errorRatio) errors++;
    }
    return {
      version,
      requests,
      errors,
      errorRatio: requests === 0 ? Number.NaN : errors / requests,
      p50Us: quantileUs(h, 0.5),
      p95Us: quantileUs(h, 0.95),
      p99Us: quantileUs(h, 0.99),
      requestsPerSecond: requests / 60,
      windowMs: 60_000,
      pods: 1,
      slotsReported: 12,
      quantileUs: (q) => quantileUs(h, q),
    };
  }
}

const histograms: Histogram[] = [];
afterAll(() => {
  for (const h of histograms) h.destroy();
});

/** Judges `windows` windows of independent traffic; counts the verdicts that fail on each check. */
function simulate(
  policy: JudgePolicy,
  baseline: Traffic,
  canary: Traffic,
  baselineRequests: number,
  canaryRequests: number,
  windows: number,
) {
  const fails: Partial<Record<CheckName | 'any', number>> = {};
  let last: Verdict | undefined;
  for (let w = 0; w < windows; w++) {
    const start = histograms.length;
    const v = judge(policy, baseline.window('v1', baselineRequests, histograms), canary.window('v2', canaryRequests, histograms), w);
    for (const h of histograms.splice(start)) h.destroy();
    for (const c of v.checks) if (c.outcome === 'fail') fails[c.check] = (fails[c.check] ?? 0) + 1;
    if (v.outcome === 'fail') fails.any = (fails.any ?? 0) + 1;
    last = v;
  }
  return { fails, last: last! };
}

describe("at 1 % canary share of 100 rps, 0.5 % errors on both versions, 60 s windows (the issue's case)", () => {
  // 5940 baseline and 60 canary requests per window; same latency, same error ratio: nothing to roll back.
  const windows = 400;

  it('the thresholds-only rule fails about a quarter of the windows on noise alone, or never judges behind a minimum', () => {
    const gated = simulate(THRESHOLDS_ONLY, new Traffic(40, 0.4, 0.005, 1), new Traffic(40, 0.4, 0.005, 2), 5940, 60, 20);
    expect(gated.fails.any ?? 0).toBe(0);
    expect(gated.last.outcome).toBe('inconclusive'); // 60 canary requests < minSamples 100: never judged at all
    const { fails } = simulate(
      { ...THRESHOLDS_ONLY, minSamples: 1 },
      new Traffic(40, 0.4, 0.005, 1),
      new Traffic(40, 0.4, 0.005, 2),
      5940,
      60,
      windows,
    );
    // P(at least 1 error in 60 at 0.5 %) = 26 %: one error makes the canary 1.7 % > 2 x 0.5 %.
    expect((fails.error_ratio_relative ?? 0) / windows).toBeGreaterThan(0.15);
    expect((fails.error_ratio_relative ?? 0) / windows).toBeLessThan(0.4);
  });

  it('with the tests, no window fails, and the breaches of the point estimate are inconclusive with a request count', () => {
    const { fails } = simulate(DEFAULT_JUDGE_POLICY, new Traffic(40, 0.4, 0.005, 1), new Traffic(40, 0.4, 0.005, 2), 5940, 60, windows);
    expect(fails.any ?? 0).toBe(0);
    const one = judge(
      DEFAULT_JUDGE_POLICY,
      new Traffic(40, 0.4, 0, 3).window('v1', 5940, histograms),
      { ...new Traffic(40, 0.4, 0, 4).window('v2', 60, histograms), errors: 1, errorRatio: 1 / 60 },
      0,
    );
    const relative = one.checks.find((c) => c.check === 'error_ratio_relative')!;
    expect(relative.outcome).toBe('inconclusive');
    expect(relative.evidence && 'neededRequests' in relative.evidence ? relative.evidence.neededRequests : null).toBeGreaterThan(1000);
    expect(relative.reason).toMatch(/not yet supported: lower bound .* more canary requests at this rate would decide it/);
  });
});

describe('false rollbacks on healthy canaries stay under alpha (simulated at a large alpha so that they show)', () => {
  it.each([
    ['1 % share, 0.5 % errors', 5940, 60],
    ['5 % share, 1 % errors', 5700, 300],
    ['50 % share, 2 % errors', 3000, 3000],
  ])('%s', (_name, nB, nC) => {
    const alpha = 0.02;
    const policy: JudgePolicy = { ...DEFAULT_JUDGE_POLICY, minSamples: 1, statistics: { ...DEFAULT_JUDGE_POLICY.statistics, alpha } };
    const errorRatio = nC === 60 ? 0.005 : nC === 300 ? 0.01 : 0.02;
    const windows = 300;
    const { fails } = simulate(policy, new Traffic(40, 0.5, errorRatio, 11), new Traffic(40, 0.5, errorRatio, 12), nB, nC, windows);
    // Each check's false-fail rate is at most its alpha (alpha / 2 for the relative ones); binomial slack of 3 sd.
    for (const check of ['latency_p95_relative', 'error_ratio_relative', 'latency_p95_absolute', 'error_ratio_absolute'] as const) {
      const rate = (fails[check] ?? 0) / windows;
      expect(rate, check).toBeLessThanOrEqual(alpha + 3 * Math.sqrt((alpha * (1 - alpha)) / windows));
    }
  });
});

describe('power: real regressions fail, even at low traffic', () => {
  it('errors at 25 % with 60 canary requests per window fail nearly every window', () => {
    const { fails, last } = simulate(DEFAULT_JUDGE_POLICY, new Traffic(40, 0.4, 0.005, 21), new Traffic(40, 0.4, 0.25, 22), 5940, 60, 50);
    // About 10 errors of 60 are needed at the default alpha; P(fewer at 25 %) is about 3 %.
    expect(fails.error_ratio_relative).toBeGreaterThanOrEqual(45);
    expect(last.outcome).toBe('fail');
    expect(last.checks.find((c) => c.check === 'error_ratio_relative')?.reason).toMatch(/supported: lower bound/);
  });

  it('a canary three times slower fails the relative latency check with 300 canary requests', () => {
    const { fails } = simulate(DEFAULT_JUDGE_POLICY, new Traffic(40, 0.4, 0, 31), new Traffic(120, 0.4, 0, 32), 5700, 300, 50);
    expect(fails.latency_p95_relative).toBe(50);
  });

  it('a gross breach fails at once: 10 errors of 12 requests', () => {
    const base = new Traffic(40, 0.4, 0, 41).window('v1', 1000, histograms);
    const canary = { ...new Traffic(40, 0.4, 0, 42).window('v2', 12, histograms), errors: 10, errorRatio: 10 / 12 };
    const v = judge(DEFAULT_JUDGE_POLICY, base, canary, 0);
    expect(v.outcome).toBe('fail');
    expect(v.checks.find((c) => c.check === 'error_ratio_absolute')?.reason).toMatch(/gross breach: 10 of 12/);
  });

  it('few requests never pass: a clean canary with 20 requests is inconclusive, not pass', () => {
    const v = judge(
      DEFAULT_JUDGE_POLICY,
      new Traffic(40, 0.4, 0, 51).window('v1', 1000, histograms),
      new Traffic(40, 0.4, 0, 52).window('v2', 20, histograms),
      0,
    );
    expect(v.outcome).toBe('inconclusive');
    expect(v.reason).toMatch(/too few requests to pass \(minimum 100 per version\)/);
  });

  it('every tested check carries its evidence: rule, counts, tolerated rate, bound and alpha', () => {
    const v = judge(
      DEFAULT_JUDGE_POLICY,
      new Traffic(40, 0.4, 0.01, 61).window('v1', 5000, histograms),
      new Traffic(40, 0.4, 0.01, 62).window('v2', 500, histograms),
      0,
    );
    expect(v.checks).toHaveLength(4);
    for (const c of v.checks) {
      expect(c.evidence, c.check).toMatchObject({
        rule: expect.any(String),
        requests: 500,
        alpha: expect.any(Number),
        lowerBound: expect.any(Number),
      });
      expect(c.evidence && 'count' in c.evidence ? c.evidence.count : -1).toBeGreaterThanOrEqual(0);
    }
    expect(v.checks.find((c) => c.check === 'latency_p95_relative')!.evidence!.latencyThresholdMs).toBeGreaterThan(1.5 * v.baseline.p95Ms);
  });
});
