/**
 * The sequential judge end to end on deterministic slot streams: the check table, the detector and `evaluateWindow`,
 * with hand-made windows (exponential latencies: a canary `scale` times slower is the same shape stretched) and the
 * expected counts of each slot, so that every case decides the same way on every run.
 */
import { describe, expect, it } from 'vitest';
import type { SlotCounts } from '../../src/core/window.ts';
import { chartFailThreshold, checkPlans, EMPTY_DETECTOR, reportedChart, type DetectorState } from '../../src/core/detector.ts';
import { CHECK_TABLE, type CheckModel } from '../../src/core/checks.ts';
import { DEFAULT_JUDGE_POLICY, evaluateWindow, sequentialPolicyOf, type JudgePolicy } from '../../src/core/judge.ts';
import { isSequential, type Verdict } from '../../src/core/verdict.ts';
import type { WindowSnapshot } from '../../src/core/window.ts';

const SLOT_MS = 5000;
const SLOTS = 12;
const MEAN_US = 50_000;

/** One version's traffic in a slot: requests, error ratio 0..1, latency scale against the baseline's. */
interface Traffic {
  readonly requests: number;
  readonly errorRatio: number;
  readonly scale: number;
}
type Stream = (slot: number) => { baseline: Traffic; canary: Traffic };

/** Errors of a slot: the expected count, carried over as a remainder so that the sum over slots stays exact. */
const errorsOf = (t: Traffic, slot: number): number =>
  Math.floor(t.requests * t.errorRatio * (slot + 1)) - Math.floor(t.requests * t.errorRatio * slot);
const above = (t: Traffic, us: number): number => t.requests * Math.exp(-us / (MEAN_US * t.scale));
const counts = (t: Traffic, slot: number): SlotCounts => ({
  requests: t.requests,
  errors: errorsOf(t, slot),
  countAbove: (us) => Math.round(above(t, us)),
});

function snapshot(version: string, stream: Stream, pick: 'baseline' | 'canary', last: number): WindowSnapshot {
  let requests = 0;
  let errors = 0;
  let scale = 1;
  for (let i = last - SLOTS + 1; i <= last; i++) {
    const t = stream(i)[pick];
    requests += t.requests;
    errors += errorsOf(t, i);
    scale = t.scale;
  }
  const quantileUs = (q: number): number => (requests === 0 ? Number.NaN : -MEAN_US * scale * Math.log(1 - Math.min(q, 0.999999)));
  return {
    version,
    requests,
    errors,
    errorRatio: requests === 0 ? Number.NaN : errors / requests,
    p50Us: quantileUs(0.5),
    p95Us: quantileUs(0.95),
    p99Us: quantileUs(0.99),
    requestsPerSecond: requests / ((SLOTS * SLOT_MS) / 1000),
    windowMs: SLOTS * SLOT_MS,
    pods: 2,
    slotsReported: requests === 0 ? 0 : SLOTS,
    quantileUs,
  };
}

interface Run {
  readonly verdicts: Verdict[];
  readonly detector: DetectorState;
  /** The first slot whose verdict failed, or null. */
  readonly failedAt: number | null;
  readonly warnedAt: number | null;
}

/** Evaluates slots 0..slots-1 of the stream, one evaluation per slot, as the evaluator does. */
function run(stream: Stream, slots: number, policy: JudgePolicy = DEFAULT_JUDGE_POLICY, flagPercent: number | null = null): Run {
  let detector = EMPTY_DETECTOR;
  const verdicts: Verdict[] = [];
  let failedAt: number | null = null;
  let warnedAt: number | null = null;
  for (let last = 0; last < slots; last++) {
    const slotsOf = (i: number) => ({
      baseline: i < 0 ? null : counts(stream(i).baseline, i),
      canary: i < 0 ? null : counts(stream(i).canary, i),
    });
    const window = { firstSlot: last - SLOTS + 1, lastSlot: last, slotMs: SLOT_MS, slotsOf };
    const evaluated = evaluateWindow(
      policy,
      detector,
      snapshot('v1', stream, 'baseline', last),
      snapshot('v2', stream, 'canary', last),
      window,
      flagPercent,
    );
    detector = evaluated.detector;
    verdicts.push(evaluated.verdict);
    if (failedAt === null && evaluated.verdict.outcome === 'fail') failedAt = last;
    if (warnedAt === null && evaluated.verdict.outcome === 'warn') warnedAt = last;
  }
  return { verdicts, detector, failedAt, warnedAt };
}

/** 100 rps at `share`, 0.5 % errors, the canary changed from `changeAt` on. */
function fleet(share: number, change: Partial<Traffic> = {}, changeAt = 0): Stream {
  const perSlot = 100 * (SLOT_MS / 1000);
  const baseline: Traffic = { requests: perSlot * (1 - share), errorRatio: 0.005, scale: 1 };
  const healthy: Traffic = { requests: perSlot * share, errorRatio: 0.005, scale: 1 };
  const changed: Traffic = { ...healthy, ...change };
  return (slot) => ({ baseline, canary: slot >= changeAt ? changed : healthy });
}

const checkOf = (v: Verdict, name: string) => v.checks.find((c) => c.check === name);

describe('sequential judge: healthy canaries pass', () => {
  it.each([0.01, 0.05, 0.25, 0.5])('A/A at %d share: every evaluation after the first minSamples passes, none warns', (share) => {
    const r = run(fleet(share), 400);
    expect(r.failedAt).toBeNull();
    expect(r.warnedAt).toBeNull();
    expect(r.verdicts.at(-1)!.outcome).toBe('pass');
    expect(r.verdicts.at(-1)!.checks.map((c) => c.check)).toEqual([
      'latency_p95_relative',
      'error_ratio_relative',
      'latency_p95_absolute',
      'error_ratio_absolute',
    ]);
  });

  it('a fresh canary is inconclusive until its checks have seen minSamples requests', () => {
    const r = run(fleet(0.05), 3); // 25 canary requests per slot: 75 < 100
    expect(r.verdicts.at(-1)!.outcome).toBe('inconclusive');
    expect(r.verdicts.at(-1)!.reason).toContain('too few canary requests observed to pass (75 of minimum 100)');
  });
});

describe('sequential judge: regressions fail, with their evidence', () => {
  it.each([
    ['10x errors at 5 % share', 0.05, { errorRatio: 0.05 }, 'error_ratio_relative'],
    ['50 % errors at 1 % share', 0.01, { errorRatio: 0.5 }, 'error_ratio_relative'],
    ['1.7x latency at 25 % share', 0.25, { scale: 1.7 }, 'latency_p95_relative'],
    ['1.3x latency at 50 % share', 0.5, { scale: 1.3 }, 'latency_p95_relative'],
    ['20x slower at 5 % share (past 500 ms)', 0.05, { scale: 20 }, 'latency_p95_absolute'],
  ])('%s fails on %s', (_name, share, change, check) => {
    const r = run(fleet(share, change, 20), 400);
    expect(r.failedAt).not.toBeNull();
    expect(r.failedAt!).toBeGreaterThanOrEqual(20);
    const at = r.verdicts.findIndex((v) => checkOf(v, check)?.outcome === 'fail');
    expect(at).toBeGreaterThanOrEqual(r.failedAt!);
    const c = checkOf(r.verdicts[at]!, check)!;
    expect(c.outcome).toBe('fail');
    expect(isSequential(c.evidence)).toBe(true);
    if (!isSequential(c.evidence)) return;
    expect(c.evidence.statistic).toBeGreaterThanOrEqual(c.evidence.failThreshold);
    // The change is estimated no earlier than it began: the statistic left zero after the regression started.
    expect(c.evidence.risingSinceMs!).toBeGreaterThan(20 * SLOT_MS);
    expect(c.reason).toMatch(/statistic [\d.]+ of [\d.]+ \(warn [\d.]+\).*: breach, rising for \d+ s/);
  });

  it.each([
    // A gross regression leads on the chart tuned for ratio³ (8 x), a near-threshold one on the chart tuned for ratio² (4 x).
    ['10x errors at 5 % share', 0.05, 0.05, "8 x the baseline's error ratio"],
    ['2.5x errors at 25 % share', 0.25, 0.0125, "4 x the baseline's error ratio"],
  ])('the relative error check runs two charts: %s fails on the chart tuned for %s', (_name, share, errorRatio, tuning) => {
    const r = run(fleet(share, { errorRatio }, 20), 720);
    expect(r.failedAt).not.toBeNull();
    const c = checkOf(r.verdicts[r.failedAt!]!, 'error_ratio_relative')!;
    expect(c.outcome).toBe('fail');
    expect(c.reason).toContain(`chart tuned for ${tuning}`);
    expect(isSequential(c.evidence) && c.evidence.rule.endsWith(`leading chart: ${tuning}`)).toBe(true);
    expect(r.detector.checks.error_ratio_relative!.charts).toHaveLength(2);
    expect(r.detector.checks.latency_p95_relative!.charts).toHaveLength(1);
  });

  it('accumulates beyond the window: a 2x error regression at 5 % share, never breaching one window alone, fails', () => {
    const r = run(fleet(0.05, { errorRatio: 0.02 }, 0), 720);
    expect(r.failedAt).not.toBeNull();
    expect(r.failedAt!).toBeGreaterThan(SLOTS);
  });

  it('forgets a healthy past: a regression after 1000 healthy slots is caught as fast as one at the start', () => {
    const early = run(fleet(0.05, { errorRatio: 0.05 }, 0), 100).failedAt!;
    const late = run(fleet(0.05, { errorRatio: 0.05 }, 1000), 1100).failedAt!;
    expect(late - 1000).toBeLessThanOrEqual(early + 1);
  });

  it('is exact without baseline errors: a canary erring while the baseline never does fails', () => {
    const stream: Stream = () => ({
      baseline: { requests: 475, errorRatio: 0, scale: 1 },
      canary: { requests: 25, errorRatio: 0.08, scale: 1 },
    });
    expect(run(stream, 60).failedAt).not.toBeNull();
  });

  it('warns before it fails, on the same statistic', () => {
    const r = run(fleet(0.25, { scale: 1.3 }, 20), 400);
    expect(r.warnedAt).not.toBeNull();
    expect(r.warnedAt!).toBeLessThan(r.failedAt ?? Number.POSITIVE_INFINITY);
    const warn = checkOf(r.verdicts[r.warnedAt!]!, 'latency_p95_relative')!;
    expect(warn.outcome).toBe('warn');
    expect(warn.reason).toContain('above the warning threshold');
  });
});

describe('the check table: charts', () => {
  it.each(CHECK_TABLE.map((row) => [row.name, row]))('%s: its model, its slots and its count of charts agree', (_name, row) => {
    const stream = fleet(0.25, { errorRatio: 0.02, scale: 1.5 });
    const thresholds = {
      latency: {
        relativeP50: 1.3,
        relativeP95: 1.5,
        relativeP99: 2,
        absoluteP50Us: 100_000,
        absoluteP95Us: 500_000,
        absoluteP99Us: 900_000,
      },
      errors: { relativeRatio: 2, baselineFloor: 0.001, absoluteRatio: 0.05 },
      throughputDrop: 0.5,
    };
    const model = row.model(thresholds, snapshot('v1', stream, 'baseline', 20), snapshot('v2', stream, 'canary', 20), 25);
    if (typeof model === 'string') throw new Error(model);
    expect(model.charts).toHaveLength(row.charts);
    const trial = model.slot(counts(stream(20).baseline, 20), counts(stream(20).canary, 20));
    expect(trial?.p1).toHaveLength(row.charts);
    for (const p1 of trial!.p1) expect(p1 > 0 && p1 < 1 && p1 !== trial!.p0).toBe(true);
  });
});

describe('the relative error check: the baseline floor applies to the window', () => {
  const row = CHECK_TABLE.find((r) => r.name === 'error_ratio_relative')!;
  const thresholds = sequentialPolicyOf(DEFAULT_JUDGE_POLICY).thresholds;
  const at = (windowErrorRatio: number) => {
    const stream: Stream = () => ({
      baseline: { requests: 250, errorRatio: windowErrorRatio, scale: 1 },
      canary: { requests: 250, errorRatio: windowErrorRatio, scale: 1 },
    });
    const model = row.model(thresholds, snapshot('v1', stream, 'baseline', 20), snapshot('v2', stream, 'canary', 20), null);
    if (typeof model === 'string') throw new Error(model);
    // A slot with one canary error and none from the baseline.
    return model.slot({ requests: 250, errors: 0, countAbove: () => 0 }, { requests: 250, errors: 1, countAbove: () => 0 })!;
  };
  it.each([
    // [the window's baseline error ratio, the slot's trials]
    [0.005, 1], // above the floor: the slot's zero is sampling noise, nothing is added
    [0.001, 1], // at the floor
    [1 / 3000, 1 + (0.001 - 1 / 3000) * 250], // below (1 error in 3000): topped up by the deficit x the slot's requests
    [0, 1 + 0.001 * 250], // a clean baseline counts as at the floor
  ])('baseline window at %d: a slot with no baseline error counts %d trials', (ratio, trials) => {
    const trial = at(ratio);
    expect(trial.events).toBe(1);
    expect(trial.trials).toBeCloseTo(trials, 9);
  });
});

describe('reportedChart: the chart a check is read from', () => {
  const thresholds = [
    { fail: 10, warn: 5.5, rate: 0.003 },
    { fail: 12, warn: 5.5, rate: 0.003 },
  ];
  const chart = (statistic: number, aboveSinceMs: number | null = null) => ({ statistic, risingSinceMs: 0, aboveSinceMs });
  it.each([
    // statistics and breach times of charts 0 and 1, the chart reported
    ['the first to breach, though the other is now further past its threshold', [chart(11, 0), chart(30, 65_000)], 0],
    ['the first to breach when it is chart 1', [chart(11, 70_000), chart(13, 5_000)], 1],
    ['the one breaching over one only warning', [chart(9, null), chart(12.5, 5_000)], 1],
    ['the one above its warning threshold over one nearer its fail threshold but below warning', [chart(5, null), chart(6, null)], 1],
    ['the one nearest its fail threshold when none warns', [chart(3, null), chart(4, null)], 0],
    ['the first on a tie', [chart(0, null), chart(2, null)], 0],
  ])('%s', (_case, charts, expected) => expect(reportedChart(thresholds, { charts, canaryRequests: 0 })).toBe(expected));
});

describe('sequential judge: policy', () => {
  it('policy.for holds a breach as a warning until it has lasted', () => {
    const policy: JudgePolicy = { ...DEFAULT_JUDGE_POLICY, forMs: { error_ratio_relative: 30_000, error_ratio_absolute: 30_000 } };
    const plain = run(fleet(0.05, { errorRatio: 0.3 }, 20), 200).failedAt!;
    const held = run(fleet(0.05, { errorRatio: 0.3 }, 20), 200, policy);
    expect(held.failedAt! - plain).toBe(30_000 / SLOT_MS);
    expect(held.verdicts[plain]!.outcome).toBe('warn');
    expect(held.verdicts[plain]!.reason).toMatch(/breach held 0 s of the 30 s required/);
  });

  it('says when it is blind: at 0.05 canary requests per second the relative checks are underpowered', () => {
    const stream: Stream = (slot) => ({
      baseline: { requests: 500, errorRatio: 0.005, scale: 1 },
      canary: { requests: slot % 4 === 0 ? 1 : 0, errorRatio: 0, scale: 1 },
    });
    const policy: JudgePolicy = { ...DEFAULT_JUDGE_POLICY, statistics: { ...DEFAULT_JUDGE_POLICY.statistics, horizonMs: 600_000 } };
    const v = run(stream, 40, policy).verdicts.at(-1)!;
    expect(v.outcome).toBe('inconclusive');
    expect(v.underpowered).toContain('latency_p95_relative');
    expect(checkOf(v, 'latency_p95_relative')!.reason).toMatch(
      /underpowered: at 5\.00 trials\/s a regression of the configured size would take .* to detect, longer than the 10 min horizon/,
    );
  });

  it('counts each slot once: evaluating the same slot again changes nothing', () => {
    const stream = fleet(0.05, { errorRatio: 0.05 });
    const first = run(stream, 10);
    const slotsOf = (i: number) => ({ baseline: counts(stream(i).baseline, i), canary: counts(stream(i).canary, i) });
    const again = evaluateWindow(
      DEFAULT_JUDGE_POLICY,
      first.detector,
      snapshot('v1', stream, 'baseline', 9),
      snapshot('v2', stream, 'canary', 9),
      { firstSlot: -2, lastSlot: 9, slotMs: SLOT_MS, slotsOf },
      null,
    );
    expect(again.detector).toBe(first.detector);
  });

  it('the throughput check (off by default) fails when the canary gets far less than the flag gives it', () => {
    const stream: Stream = () => ({
      baseline: { requests: 475, errorRatio: 0.005, scale: 1 },
      canary: { requests: 5, errorRatio: 0.005, scale: 1 },
    });
    const off = run(stream, 60, { ...DEFAULT_JUDGE_POLICY, trafficShareAlpha: 0 }, 5).verdicts.at(-1)!;
    expect(checkOf(off, 'throughput')).toBeUndefined();
    const on = run(stream, 60, { ...DEFAULT_JUDGE_POLICY, trafficShareAlpha: 0, throughputDrop: 0.5 }, 5);
    expect(checkOf(on.verdicts.at(-1)!, 'throughput')!.outcome).toBe('fail');
  });

  it('the p50 and p99 checks join the table when set', () => {
    const policy: JudgePolicy = {
      ...DEFAULT_JUDGE_POLICY,
      latency: { ...DEFAULT_JUDGE_POLICY.latency, relativeP50: 1.3, relativeP99: 2, absoluteP99Us: 1_000_000 },
    };
    const r = run(fleet(0.25, { scale: 1.5 }, 20), 200, policy);
    expect(r.verdicts[0]!.checks.map((c) => c.check)).toEqual([
      'latency_p50_relative',
      'latency_p95_relative',
      'latency_p99_relative',
      'error_ratio_relative',
      'latency_p95_absolute',
      'latency_p99_absolute',
      'error_ratio_absolute',
    ]);
    expect(r.verdicts.some((v) => checkOf(v, 'latency_p50_relative')!.outcome === 'fail')).toBe(true);
  });
});

describe('checkPlans: how the false-rollback rate is shared', () => {
  const policy = sequentialPolicyOf(DEFAULT_JUDGE_POLICY);
  const plansAt = (errorRatio: number, scale = 1) => {
    const stream: Stream = () => ({
      baseline: { requests: 475, errorRatio, scale },
      canary: { requests: 25, errorRatio, scale },
    });
    return checkPlans(policy, snapshot('v1', stream, 'baseline', 20), snapshot('v2', stream, 'canary', 20), 5, SLOT_MS);
  };
  const rates = (plans: ReturnType<typeof plansAt>, relative: boolean) =>
    plans.filter((p) => p.row.needsBaseline === relative).flatMap((p) => p.charts.map((c) => c.rate));
  const even = policy.falseRollbackRate / 5;

  it('gives the checks against the baseline almost all of it when the baseline is far below the absolute lines', () => {
    const plans = plansAt(0.005);
    // 0.5 % errors against a 5 % line and 50 ms latencies against 500 ms: the absolute charts cannot trip on a canary
    // like the baseline, so the 3 relative charts share the whole 1 %.
    expect(rates(plans, false)).toEqual([even, even]);
    for (const rate of rates(plans, true)) expect(rate).toBeCloseTo(policy.falseRollbackRate / 3, 6);
    // More rate, lower thresholds: each relative chart sits below where an even share would put it.
    const error = plans.find((p) => p.row.name === 'error_ratio_relative')!;
    const model = error.model as CheckModel;
    for (const [i, c] of error.charts.entries()) {
      const evenFail = chartFailThreshold(policy.horizonMs, even, model.rates.p0, model.charts[i]!.p1, model.rates.trialsPerS, SLOT_MS);
      expect(c.fail).toBeLessThan(evenFail - 0.3);
    }
  });

  it.each([0.04, 0.03])('leaves every chart its even share when the baseline (%d errors) may be at or above the 5 % line / √2', (ratio) => {
    // 3 %: 171 errors in 5,700 requests, whose upper bound is above 3.54 %; 4 %: above it outright. No share is a
    // bound for the absolute chart then, and nothing is handed on.
    for (const rate of rates(plansAt(ratio), true)) expect(rate).toBeCloseTo(even, 9);
  });

  it('spends a little on an absolute chart whose H0 the baseline is below, but near (2 % errors)', () => {
    const relative = rates(plansAt(0.02), true)[0]!;
    expect(relative).toBeGreaterThan(even);
    expect(relative).toBeLessThan(policy.falseRollbackRate / 3 - 1e-7);
  });
});
