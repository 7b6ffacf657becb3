/**
 * The judge in its thresholds-only mode (policy.statistics.enabled false), from the specification: every threshold at, just below and just above its value, the floors, the
 * minimum samples, a baseline without traffic, NaN, the overall worst-of order, reasons and figures.
 * Cases are written as changes to one healthy base (baseline and canary: 1000 requests, no errors, p95 360 ms).
 *
 * Thresholds of the default policy on that base (canary figures that cross them are in the tables):
 *   relative latency: warn > 1.25 x 360 = 450 ms, fail > 1.5 x 360 = 540 ms
 *   absolute latency: fail > 500 ms
 *   relative errors:  fail > 2 x max(baseline ratio, 0.005)  (1.0 % with a clean baseline, 4.0 % with a 2 % one)
 *   absolute errors:  warn > 0.5 %, fail > 5 %
 */
import { describe, expect, it } from 'vitest';
import { judge, type JudgePolicy } from '../../src/core/judge.ts';
import { OUTCOME_ORDER, worst, type CheckName, type Outcome, type Verdict } from '../../src/core/verdict.ts';
import type { WindowSnapshot } from '../../src/core/window.ts';
import { piecewiseQuantile, THRESHOLDS_ONLY } from '../helpers/snapshots.ts';

/** What a case may change in one version's window. Latencies in µs, as the snapshot carries them. */
interface Side {
  requests?: number;
  errors?: number;
  /** Overrides errors / requests (for NaN cases). */
  errorRatio?: number;
  p50Us?: number;
  p95Us?: number;
  p99Us?: number;
}

const BASE: Required<Omit<Side, 'errorRatio'>> = { requests: 1000, errors: 0, p50Us: 120_000, p95Us: 360_000, p99Us: 700_000 };
const WINDOW_MS = 60_000;
const AT_MS = 1_700_000_000_000;

/** A window snapshot of one version built from the base with the case's changes. */
function snap(version: string, side: Side = {}): WindowSnapshot {
  const s = { ...BASE, ...side };
  return {
    version,
    requests: s.requests,
    errors: s.errors,
    errorRatio: side.errorRatio ?? (s.requests === 0 ? Number.NaN : s.errors / s.requests),
    p50Us: s.p50Us,
    p95Us: s.p95Us,
    p99Us: s.p99Us,
    requestsPerSecond: s.requests / (WINDOW_MS / 1000),
    windowMs: WINDOW_MS,
    pods: 3,
    slotsReported: 12,
    quantileUs: piecewiseQuantile(s.p50Us, s.p95Us, s.p99Us),
  };
}

/** A window with no traffic at all, as FleetWindow reports it. */
const EMPTY: Side = { requests: 0, errors: 0, p50Us: Number.NaN, p95Us: Number.NaN, p99Us: Number.NaN };

function run(baseline: Side = {}, canary: Side = {}, policy: JudgePolicy = THRESHOLDS_ONLY): Verdict {
  return judge(policy, snap('v1', baseline), snap('v2', canary), AT_MS);
}

function outcomeOf(verdict: Verdict, check: CheckName): Outcome {
  const found = verdict.checks.filter((c) => c.check === check);
  expect(found).toHaveLength(1);
  return found[0]!.outcome;
}

type Expected = Partial<Record<CheckName, Outcome>> & { overall: Outcome };

interface Case {
  name: string;
  baseline?: Side;
  canary?: Side;
  expected: Expected;
}

const ALL_CHECKS: readonly CheckName[] = ['latency_p95_relative', 'latency_p95_absolute', 'error_ratio_relative', 'error_ratio_absolute'];

function expectOutcomes(verdict: Verdict, expected: Expected): void {
  for (const check of ALL_CHECKS) {
    const want = expected[check];
    if (want !== undefined) expect({ check, outcome: outcomeOf(verdict, check) }).toEqual({ check, outcome: want });
  }
  expect(verdict.outcome).toBe(expected.overall);
}

describe('judge: the healthy base', () => {
  it('passes every check, one result per check', () => {
    const v = run();
    expect(v.checks.map((c) => c.check).sort()).toEqual([...ALL_CHECKS].sort());
    expect(v.checks.every((c) => c.outcome === 'pass')).toBe(true);
    expect(v.outcome).toBe('pass');
    expect(v.atMs).toBe(AT_MS);
  });
});

describe('judge: latency thresholds (canary p95 changed)', () => {
  const cases: Case[] = [
    // relative warn at 450 ms
    {
      name: 'just below relative warn',
      canary: { p95Us: 449_999 },
      expected: { latency_p95_relative: 'pass', latency_p95_absolute: 'pass', overall: 'pass' },
    },
    { name: 'at relative warn', canary: { p95Us: 450_000 }, expected: { latency_p95_relative: 'pass', overall: 'pass' } },
    {
      name: 'just above relative warn',
      canary: { p95Us: 450_001 },
      expected: { latency_p95_relative: 'warn', latency_p95_absolute: 'pass', overall: 'warn' },
    },
    // absolute fail at 500 ms (relative is in its warning band here)
    {
      name: 'just below absolute',
      canary: { p95Us: 499_999 },
      expected: { latency_p95_absolute: 'pass', latency_p95_relative: 'warn', overall: 'warn' },
    },
    { name: 'at absolute', canary: { p95Us: 500_000 }, expected: { latency_p95_absolute: 'pass', overall: 'warn' } },
    {
      name: 'just above absolute',
      canary: { p95Us: 500_001 },
      expected: { latency_p95_absolute: 'fail', latency_p95_relative: 'warn', overall: 'fail' },
    },
    // relative fail at 540 ms
    { name: 'just below relative fail', canary: { p95Us: 539_999 }, expected: { latency_p95_relative: 'warn', overall: 'fail' } },
    { name: 'at relative fail', canary: { p95Us: 540_000 }, expected: { latency_p95_relative: 'warn', overall: 'fail' } },
    {
      name: 'just above relative fail',
      canary: { p95Us: 540_001 },
      expected: { latency_p95_relative: 'fail', latency_p95_absolute: 'fail', overall: 'fail' },
    },
    // a faster canary is never a breach
    {
      name: 'canary faster than baseline',
      canary: { p95Us: 100_000 },
      expected: { latency_p95_relative: 'pass', latency_p95_absolute: 'pass', overall: 'pass' },
    },
    // the relative check follows the baseline: a slow baseline lifts its thresholds (540 ms is 1.2 x 450 ms)
    {
      name: 'baseline p95 450 ms, canary 540 ms',
      baseline: { p95Us: 450_000 },
      canary: { p95Us: 540_000 },
      expected: { latency_p95_relative: 'pass', latency_p95_absolute: 'fail', overall: 'fail' },
    },
  ];
  it.each(cases)('$name', ({ baseline, canary, expected }) => expectOutcomes(run(baseline, canary), expected));
});

describe('judge: error thresholds (canary errors of 1000 changed)', () => {
  const cases: Case[] = [
    // absolute warn at 0.5 %
    {
      name: 'just below absolute warn',
      canary: { errors: 4 },
      expected: { error_ratio_absolute: 'pass', error_ratio_relative: 'pass', overall: 'pass' },
    },
    {
      name: 'at absolute warn',
      canary: { errors: 5 },
      expected: { error_ratio_absolute: 'pass', error_ratio_relative: 'pass', overall: 'pass' },
    },
    {
      name: 'just above absolute warn',
      canary: { errors: 6 },
      expected: { error_ratio_absolute: 'warn', error_ratio_relative: 'pass', overall: 'warn' },
    },
    // relative with a clean baseline: the 0.5 % floor makes the threshold 1.0 %, not 0 (and no division by zero)
    {
      name: 'floor: baseline 0 %, canary 0.9 % passes',
      canary: { errors: 9 },
      expected: { error_ratio_relative: 'pass', error_ratio_absolute: 'warn', overall: 'warn' },
    },
    {
      name: 'floor: baseline 0 %, canary 1.0 % (at) passes',
      canary: { errors: 10 },
      expected: { error_ratio_relative: 'pass', overall: 'warn' },
    },
    {
      name: 'floor: baseline 0 %, canary 1.1 % fails',
      canary: { errors: 11 },
      expected: { error_ratio_relative: 'fail', error_ratio_absolute: 'warn', overall: 'fail' },
    },
    {
      name: 'floor: baseline 0 %, a single canary error is no breach',
      canary: { errors: 1 },
      expected: { error_ratio_relative: 'pass', error_ratio_absolute: 'pass', overall: 'pass' },
    },
    // relative with a 2 % baseline: threshold 4.0 %
    {
      name: 'baseline 2 %, canary 3.9 % passes',
      baseline: { errors: 20 },
      canary: { errors: 39 },
      expected: { error_ratio_relative: 'pass', error_ratio_absolute: 'warn', overall: 'warn' },
    },
    {
      name: 'baseline 2 %, canary 4.0 % (at) passes',
      baseline: { errors: 20 },
      canary: { errors: 40 },
      expected: { error_ratio_relative: 'pass', overall: 'warn' },
    },
    {
      name: 'baseline 2 %, canary 4.1 % fails',
      baseline: { errors: 20 },
      canary: { errors: 41 },
      expected: { error_ratio_relative: 'fail', error_ratio_absolute: 'warn', overall: 'fail' },
    },
    // a baseline ratio below the floor is lifted to it (0.4 % baseline -> threshold still 2 x 0.5 % = 1.0 %)
    {
      name: 'baseline 0.4 % below floor, canary 1.1 % fails',
      baseline: { errors: 4 },
      canary: { errors: 11 },
      expected: { error_ratio_relative: 'fail', overall: 'fail' },
    },
    // absolute fail at 5 % (with a 10 % baseline the relative check stays quiet: threshold 20 %)
    {
      name: 'just below absolute fail',
      baseline: { errors: 100 },
      canary: { errors: 49 },
      expected: { error_ratio_absolute: 'warn', error_ratio_relative: 'pass', overall: 'warn' },
    },
    {
      name: 'at absolute fail',
      baseline: { errors: 100 },
      canary: { errors: 50 },
      expected: { error_ratio_absolute: 'warn', error_ratio_relative: 'pass', overall: 'warn' },
    },
    {
      name: 'just above absolute fail',
      baseline: { errors: 100 },
      canary: { errors: 51 },
      expected: { error_ratio_absolute: 'fail', error_ratio_relative: 'pass', overall: 'fail' },
    },
  ];
  it.each(cases)('$name', ({ baseline, canary, expected }) => expectOutcomes(run(baseline, canary), expected));

  it('reports the floored relative threshold (2 x 0.005), not 0', () => {
    const check = run({}, { errors: 11 }).checks.find((c) => c.check === 'error_ratio_relative')!;
    expect(check.threshold).toBeCloseTo(0.01, 12);
    expect(check.observed).toBeCloseTo(0.011, 12);
    expect(check.unit).toBe('ratio');
  });
});

describe('judge: minimum samples', () => {
  const every = (o: Outcome): Omit<Expected, 'overall'> => Object.fromEntries(ALL_CHECKS.map((c) => [c, o]));
  const cases: Case[] = [
    {
      name: 'canary 99 requests: every check inconclusive',
      canary: { requests: 99 },
      expected: { ...every('inconclusive'), overall: 'inconclusive' },
    },
    { name: 'canary 100 requests (at the minimum): judged', canary: { requests: 100 }, expected: { ...every('pass'), overall: 'pass' } },
    { name: 'canary 0 requests: inconclusive', canary: EMPTY, expected: { ...every('inconclusive'), overall: 'inconclusive' } },
    // never fail below the minimum, however bad the few samples look
    {
      name: 'canary 99 requests at 900 ms and 50 % errors: inconclusive, not fail',
      canary: { requests: 99, errors: 50, p95Us: 900_000 },
      expected: { ...every('inconclusive'), overall: 'inconclusive' },
    },
    {
      name: 'baseline 99 requests: relative inconclusive, absolute judged',
      baseline: { requests: 99 },
      expected: {
        latency_p95_relative: 'inconclusive',
        error_ratio_relative: 'inconclusive',
        latency_p95_absolute: 'pass',
        error_ratio_absolute: 'pass',
        overall: 'inconclusive',
      },
    },
    {
      name: 'baseline 100 requests (at the minimum): judged',
      baseline: { requests: 100 },
      expected: { ...every('pass'), overall: 'pass' },
    },
    {
      name: 'baseline without traffic: relative inconclusive, absolute still fails a 600 ms p95',
      baseline: EMPTY,
      canary: { p95Us: 600_000 },
      expected: {
        latency_p95_relative: 'inconclusive',
        error_ratio_relative: 'inconclusive',
        latency_p95_absolute: 'fail',
        error_ratio_absolute: 'pass',
        overall: 'fail',
      },
    },
    {
      name: 'baseline without traffic, canary 6 % errors: absolute errors fail',
      baseline: EMPTY,
      canary: { errors: 60 },
      expected: {
        latency_p95_relative: 'inconclusive',
        error_ratio_relative: 'inconclusive',
        latency_p95_absolute: 'pass',
        error_ratio_absolute: 'fail',
        overall: 'fail',
      },
    },
    {
      name: 'baseline without traffic, healthy canary: inconclusive, not pass',
      baseline: EMPTY,
      expected: {
        latency_p95_relative: 'inconclusive',
        error_ratio_relative: 'inconclusive',
        latency_p95_absolute: 'pass',
        error_ratio_absolute: 'pass',
        overall: 'inconclusive',
      },
    },
  ];
  it.each(cases)('$name', ({ baseline, canary, expected }) => expectOutcomes(run(baseline, canary), expected));

  it('takes the minimum from the policy', () => {
    const policy: JudgePolicy = { ...THRESHOLDS_ONLY, minSamples: 1000 };
    expect(run({}, { requests: 999 }, policy).outcome).toBe('inconclusive');
    expect(run({}, {}, policy).outcome).toBe('pass');
  });

  it('says why, with both counts', () => {
    const canaryShort = run({}, { requests: 42 });
    expect(canaryShort.reason).toMatch(/canary/);
    expect(canaryShort.reason).toMatch(/\b42\b/);
    expect(canaryShort.reason).toMatch(/\b100\b/);
    const baselineShort = run({ requests: 7 }, {});
    const rel = baselineShort.checks.find((c) => c.check === 'latency_p95_relative')!;
    expect(rel.reason).toMatch(/baseline/);
    expect(rel.reason).toMatch(/\b7\b/);
    expect(rel.reason).toMatch(/\b100\b/);
  });
});

describe('judge: NaN is inconclusive, never pass', () => {
  const cases: Case[] = [
    {
      name: 'canary p95 NaN',
      canary: { p95Us: Number.NaN },
      expected: {
        latency_p95_relative: 'inconclusive',
        latency_p95_absolute: 'inconclusive',
        error_ratio_relative: 'pass',
        overall: 'inconclusive',
      },
    },
    {
      name: 'baseline p95 NaN',
      baseline: { p95Us: Number.NaN },
      expected: { latency_p95_relative: 'inconclusive', latency_p95_absolute: 'pass', overall: 'inconclusive' },
    },
    {
      name: 'canary error ratio NaN',
      canary: { errorRatio: Number.NaN },
      expected: {
        error_ratio_relative: 'inconclusive',
        error_ratio_absolute: 'inconclusive',
        latency_p95_relative: 'pass',
        overall: 'inconclusive',
      },
    },
    // Math.max(NaN, floor) must not quietly become the floor
    {
      name: 'baseline error ratio NaN',
      baseline: { errorRatio: Number.NaN },
      expected: { error_ratio_relative: 'inconclusive', error_ratio_absolute: 'pass', overall: 'inconclusive' },
    },
    // NaN < minSamples is false: a NaN count must still count as too few
    {
      name: 'canary requests NaN',
      canary: { requests: Number.NaN },
      expected: {
        latency_p95_relative: 'inconclusive',
        latency_p95_absolute: 'inconclusive',
        error_ratio_absolute: 'inconclusive',
        overall: 'inconclusive',
      },
    },
    {
      name: 'baseline requests NaN',
      baseline: { requests: Number.NaN },
      expected: {
        latency_p95_relative: 'inconclusive',
        error_ratio_relative: 'inconclusive',
        latency_p95_absolute: 'pass',
        overall: 'inconclusive',
      },
    },
    // NaN does not hide a real failure elsewhere: fail is worse than inconclusive
    {
      name: 'canary p95 NaN with 6 % errors',
      canary: { p95Us: Number.NaN, errors: 60 },
      expected: { latency_p95_absolute: 'inconclusive', error_ratio_absolute: 'fail', overall: 'fail' },
    },
  ];
  it.each(cases)('$name', ({ baseline, canary, expected }) => expectOutcomes(run(baseline, canary), expected));

  it('keeps both numbers in the reason of a NaN check', () => {
    const v = run({ p95Us: 402_000 }, { p95Us: Number.NaN });
    const rel = v.checks.find((c) => c.check === 'latency_p95_relative')!;
    expect(rel.reason).toMatch(/NaN/);
    expect(rel.reason).toMatch(/402(\.0+)? ms/);
  });
});

describe('judge: overall outcome is the worst check (pass < warn < inconclusive < fail)', () => {
  const rank = ['pass', 'warn', 'inconclusive', 'fail'] as const;
  it('declares the order of the specification', () => {
    expect([...OUTCOME_ORDER]).toEqual([...rank]);
  });
  const pairs = rank.flatMap((a, i) => rank.map((b, j) => ({ a, b, want: rank[Math.max(i, j)]! })));
  it.each(pairs)('worst($a, $b) = $want', ({ a, b, want }) => expect(worst(a, b)).toBe(want));

  const cases: Case[] = [
    { name: 'pass + warn -> warn', canary: { errors: 6 }, expected: { error_ratio_absolute: 'warn', overall: 'warn' } },
    {
      name: 'warn + inconclusive -> inconclusive',
      baseline: { requests: 99 },
      canary: { errors: 6 },
      expected: { error_ratio_absolute: 'warn', error_ratio_relative: 'inconclusive', overall: 'inconclusive' },
    },
    {
      name: 'inconclusive + fail -> fail',
      baseline: { requests: 99 },
      canary: { p95Us: 600_000 },
      expected: { latency_p95_relative: 'inconclusive', latency_p95_absolute: 'fail', overall: 'fail' },
    },
    {
      name: 'warn + fail -> fail',
      canary: { p95Us: 460_000, errors: 51 },
      expected: { latency_p95_relative: 'warn', error_ratio_absolute: 'fail', overall: 'fail' },
    },
  ];
  it.each(cases)('$name', ({ baseline, canary, expected }) => expectOutcomes(run(baseline, canary), expected));

  it('gives the reasons of the checks that set the outcome', () => {
    const v = run({ p95Us: 402_000, errors: 20 }, { p95Us: 812_000, errors: 20 });
    expect(v.outcome).toBe('fail');
    const failing = v.checks.filter((c) => c.outcome === 'fail');
    expect(failing.map((c) => c.check).sort()).toEqual(['latency_p95_absolute', 'latency_p95_relative']);
    for (const c of failing) expect(v.reason).toContain(c.reason);
    for (const c of v.checks.filter((c) => c.outcome !== 'fail')) expect(v.reason).not.toContain(c.reason);
  });
});

describe('judge: evidence', () => {
  // canary p95 812 ms vs baseline 402 ms; canary 6 % errors vs baseline 2 %: every check fails with distinct numbers
  const v = run({ p95Us: 402_000, errors: 20 }, { p95Us: 812_000, errors: 60 });
  const num = (n: string): RegExp => new RegExp(`(^|[^0-9.])${n.replace('.', '\\.')}(0*)?\\b`);
  const cases: Array<{ check: CheckName; observed: number; threshold: number; unit: 'ms' | 'ratio'; numbers: string[] }> = [
    { check: 'latency_p95_relative', observed: 812, threshold: 603, unit: 'ms', numbers: ['812', '402'] },
    { check: 'latency_p95_absolute', observed: 812, threshold: 500, unit: 'ms', numbers: ['812', '500'] },
    { check: 'error_ratio_relative', observed: 0.06, threshold: 0.04, unit: 'ratio', numbers: ['6.0', '2.0'] },
    { check: 'error_ratio_absolute', observed: 0.06, threshold: 0.05, unit: 'ratio', numbers: ['6.0', '5.0'] },
  ];
  it.each(cases)(
    '$check: fails with observed, threshold, unit and both numbers in the reason',
    ({ check, observed, threshold, unit, numbers }) => {
      const c = v.checks.find((x) => x.check === check)!;
      expect(c.outcome).toBe('fail');
      expect(c.observed).toBeCloseTo(observed, 9);
      expect(c.threshold).toBeCloseTo(threshold, 9);
      expect(c.unit).toBe(unit);
      for (const n of numbers) expect(c.reason).toMatch(num(n));
    },
  );

  it('reasons of passing checks carry both numbers too', () => {
    const ok = run({ p95Us: 402_000 }, { p95Us: 398_000, errors: 3 });
    const rel = ok.checks.find((c) => c.check === 'latency_p95_relative')!;
    expect(rel.outcome).toBe('pass');
    expect(rel.reason).toMatch(num('398'));
    expect(rel.reason).toMatch(num('402'));
    const abs = ok.checks.find((c) => c.check === 'error_ratio_absolute')!;
    expect(abs.reason).toMatch(num('0.3'));
    expect(abs.reason).toMatch(num('5.0'));
  });

  it('takes the absolute latency threshold from the policy in µs and reports it in ms', () => {
    const policy: JudgePolicy = { ...THRESHOLDS_ONLY, latency: { ...THRESHOLDS_ONLY.latency, absoluteP95Us: 300_000 } };
    const strict = run({}, { p95Us: 300_001 }, policy);
    const c = strict.checks.find((x) => x.check === 'latency_p95_absolute')!;
    expect(c.outcome).toBe('fail');
    expect(c.threshold).toBe(300);
    expect(c.reason).toMatch(num('300'));
    expect(run({}, { p95Us: 300_000 }, policy).checks.find((x) => x.check === 'latency_p95_absolute')!.outcome).toBe('pass');
  });

  it('reports the figures of both versions in ms', () => {
    const f = run(
      { p50Us: 101_000, p95Us: 402_000, p99Us: 903_000, requests: 1200, errors: 24 },
      { p50Us: 150_500, p95Us: 812_000, p99Us: 1_500_000, requests: 300, errors: 3 },
    );
    expect(f.baseline).toMatchObject({ version: 'v1', requests: 1200, errors: 24, p50Ms: 101, p95Ms: 402, p99Ms: 903, pods: 3 });
    expect(f.baseline.errorRatio).toBeCloseTo(0.02, 12);
    expect(f.baseline.requestsPerSecond).toBeCloseTo(20, 12);
    expect(f.canary).toMatchObject({ version: 'v2', requests: 300, errors: 3, p50Ms: 150.5, p95Ms: 812, p99Ms: 1500 });
    expect(f.canary.errorRatio).toBeCloseTo(0.01, 12);
    expect(f.canary.requestsPerSecond).toBeCloseTo(5, 12);
  });
});
