/**
 * The checks of the sequential judge, as one table: each row names a check, its unit, its statistic, how the policy
 * sets its threshold, whether it needs the baseline, and how a slot becomes binomial counts under "healthy" (H0) and
 * "regressed by the threshold" (H1). The judge, the detector, `explain`, the metrics and the dashboards iterate it.
 *
 * Hypotheses per row (README, "How the gate decides"; sizes from the policy):
 * - latency_pNN_relative: conditional on a slot's requests slower than the baseline's pNN (both versions'), the
 *   canary's share of them (statistics.conditionalShare, as for errors). H0: the canary is like the baseline (its share
 *   of the slow requests is its share of all requests); H1: the canary is `threshold` times slower, so it is slow as
 *   often as the baseline is slower than pNN / threshold (read from the baseline's merged histogram: no latency shape
 *   is assumed but a scale). Comparing within the slot makes a slowdown both versions share (a node's pause, a
 *   slow dependency) cancel out, and makes H0 exact whatever the noise of the baseline's pNN.
 * - error_ratio_relative: conditional on a slot's errors, the canary's share of them (statistics.conditionalShare).
 *   H0: canary rate = baseline rate. Two charts (a multichart CUSUM: Lorden 1971, Ann. Math. Stat. 42; Tartakovsky,
 *   Nikiforov & Basseville, Sequential Analysis, 2014, §8.3): H1 at threshold² x the baseline's rate, which puts the
 *   break-even at about threshold x (2.16 x for 2), so that the rule keeps its meaning; and H1 at threshold³ x
 *   (8 x for 2, break-even about 3.3 x), which gains evidence about a quarter faster from a gross regression such as
 *   10 x. The check fails when either chart crosses its threshold. A baseline whose window is below `baselineFloor`
 *   counts as at the floor: each slot's baseline errors are topped up by the window's deficit x the slot's requests.
 * - error_ratio_absolute / latency_pNN_absolute: the canary's error ratio, or its share slower than the threshold,
 *   against a line: H0 at the line / √2, H1 at the line x √2 (break-even at about the line).
 * - throughput: the canary's share of all requests against the flag's. H0: the flag's share; H1: `drop` below it.
 */
import { shareAbove } from './statistics.ts';
import { conditionalShare } from './sequential.ts';
import type { SlotCounts, WindowSnapshot } from './window.ts';

/** The checks with a sequential statistic, in the order the judge reports them. */
export const SEQUENTIAL_CHECKS = [
  'latency_p50_relative',
  'latency_p95_relative',
  'latency_p99_relative',
  'error_ratio_relative',
  'latency_p50_absolute',
  'latency_p95_absolute',
  'latency_p99_absolute',
  'error_ratio_absolute',
  'throughput',
] as const;
export type SequentialCheckName = (typeof SEQUENTIAL_CHECKS)[number];

/** The thresholds the table reads (a subset of the judge's policy). 0 turns a check off. */
export interface CheckThresholds {
  readonly latency: {
    /** Multipliers of the baseline's quantile (0: off). */
    readonly relativeP50: number;
    readonly relativeP95: number;
    readonly relativeP99: number;
    /** µs (0: off). */
    readonly absoluteP50Us: number;
    readonly absoluteP95Us: number;
    readonly absoluteP99Us: number;
  };
  readonly errors: {
    /** Multiplier of the baseline's error ratio. */
    readonly relativeRatio: number;
    /** The baseline's error ratio counts as at least this, 0..1. */
    readonly baselineFloor: number;
    /** 0..1. */
    readonly absoluteRatio: number;
  };
  /** Fall of the canary's traffic below what the flag gives it, 0..1 (0.5: half; 0: off). */
  readonly throughputDrop: number;
}

/** Binomial counts of one slot with the rates of the hypotheses. */
export interface SlotTrial {
  readonly events: number;
  readonly trials: number;
  readonly p0: number;
  /** The rate under H1 of each chart, in {@link CheckModel.charts} order. */
  readonly p1: readonly number[];
  /** Canary requests of the slot (for the minimum-samples rule). */
  readonly canaryRequests: number;
}

/** One CUSUM chart of a check: the regression its H1 is tuned for. */
export interface ChartModel {
  /** The regression in words, e.g. "4 x the baseline's error ratio". */
  readonly tuning: string;
  /** The counted rate under this H1 at the window's traffic, 0..1. */
  readonly p1: number;
}

/** A check's hypotheses for the current window. */
export interface CheckModel {
  /** The statistic in words. */
  readonly rule: string;
  /** Counts of one slot; null when the slot says nothing (no requests). */
  slot(baseline: SlotCounts | null, canary: SlotCounts | null): SlotTrial | null;
  /** Window-level rates: trials per second, H0's rate and the observed rate (NaN when unknown). */
  readonly rates: { readonly trialsPerS: number; readonly p0: number; readonly observed: number };
  /** One chart per H1, at least one; the first is tuned for the configured threshold. */
  readonly charts: readonly ChartModel[];
  /** The canary's figure and the rule's threshold, in the check's unit, for people. */
  readonly observed: number;
  readonly threshold: number;
  /** The latency the slow requests are counted against, ms (latency checks), else null. */
  readonly latencyThresholdMs: number | null;
  /**
   * Checks against a line (H0 at the line / √2, not "like the baseline"): the baseline's own events against the line
   * and its requests in the window, from which the detector bounds the rate a canary like the baseline would bring
   * events at, and so how much of the false-rollback rate this check can spend on a healthy canary. Absent: H0 is
   * "like the baseline" already.
   */
  readonly baselineCounts?: { readonly events: number; readonly trials: number };
}

export interface CheckRow {
  readonly name: SequentialCheckName;
  readonly unit: 'ms' | 'ratio';
  /** The statistic in a few words (README table). */
  readonly statistic: string;
  readonly needsBaseline: boolean;
  /** CUSUM charts the check runs (each shares the false-rollback rate as a check does). */
  readonly charts: number;
  /** The policy's threshold; 0 means off. */
  threshold(t: CheckThresholds): number;
  /** The hypotheses for this window, or a reason why the check cannot run now. */
  model(t: CheckThresholds, baseline: WindowSnapshot, canary: WindowSnapshot, flagPercent: number | null): CheckModel | string;
}

const ms = (us: number): string => `${(us / 1000).toFixed(1)} ms`;
const pct = (ratio: number): string => `${(ratio * 100).toFixed(2)} %`;
/** The time a window's data covers, s: the rates the thresholds and the power use. */
const seconds = (w: WindowSnapshot): number => (w.coveredMs ?? w.windowMs) / 1000;
/** A multiplier for people: at most 2 decimals, no trailing zeros. */
const round = (v: number): string => String(Math.round(v * 100) / 100);
/** Keeps a rate inside (0, 1) so that logarithms stay finite. */
const clampRate = (p: number): number => Math.min(1 - 1e-9, Math.max(1e-9, p));

function relativeLatency(name: SequentialCheckName, quantile: number, pick: (t: CheckThresholds) => number): CheckRow {
  const label = `p${Math.round(quantile * 100)}`;
  return {
    name,
    unit: 'ms',
    needsBaseline: true,
    charts: 1,
    threshold: pick,
    statistic: `canary's share of both versions' requests slower than the baseline's ${label}, conditional on them`,
    model(t, baseline, canary) {
      const ratio = pick(t);
      const indicatorUs = baseline.quantileUs(quantile);
      if (!Number.isFinite(indicatorUs)) return `the baseline's ${label} is not a number (${baseline.requests} requests)`;
      const tail = 1 - quantile;
      // A canary `ratio` times slower is slower than the baseline's pNN as often as the baseline is slower than pNN / ratio:
      // that many times more often than the baseline itself (`slower`, > 1).
      const slower = Math.max(1.05, shareAbove(baseline.quantileUs, indicatorUs / ratio) / tail);
      const p0 = conditionalShare(1, canary.requests, baseline.requests);
      const p1 = clampRate(conditionalShare(slower, canary.requests, baseline.requests));
      const canarySlow = canary.requests > 0 ? shareAbove(canary.quantileUs, indicatorUs) * canary.requests : 0;
      const baselineSlow = shareAbove(baseline.quantileUs, indicatorUs) * baseline.requests;
      const trials = canarySlow + baselineSlow;
      return {
        rule: `canary's share of the requests slower than the baseline's ${label} ${ms(indicatorUs)}: ${pct(p0)} if healthy (its share of all requests), ${pct(p1)} if ${ratio} x slower`,
        slot(b, c) {
          if (b === null || c === null || b.requests === 0 || c.requests === 0) return null;
          const events = c.countAbove(indicatorUs);
          return {
            events,
            trials: events + b.countAbove(indicatorUs),
            p0: conditionalShare(1, c.requests, b.requests),
            p1: [clampRate(conditionalShare(slower, c.requests, b.requests))],
            canaryRequests: c.requests,
          };
        },
        rates: { trialsPerS: trials / seconds(canary), p0, observed: trials > 0 ? canarySlow / trials : Number.NaN },
        charts: [{ tuning: `a canary ${ratio} x slower`, p1 }],
        observed: canary.quantileUs(quantile) / 1000,
        threshold: (ratio * indicatorUs) / 1000,
        latencyThresholdMs: indicatorUs / 1000,
      };
    },
  };
}

function absoluteLatency(name: SequentialCheckName, quantile: number, pick: (t: CheckThresholds) => number): CheckRow {
  const label = `p${Math.round(quantile * 100)}`;
  return {
    name,
    unit: 'ms',
    needsBaseline: false,
    charts: 1,
    threshold: pick,
    statistic: `share of canary requests slower than the absolute ${label} threshold`,
    model(t, baseline, canary) {
      const thresholdUs = pick(t);
      const line = 1 - quantile;
      const p0 = line / Math.SQRT2;
      const p1 = clampRate(line * Math.SQRT2);
      return {
        rule: `canary requests slower than ${ms(thresholdUs)}: break-even at ${pct(line)} (H0 ${pct(p0)}, H1 ${pct(p1)})`,
        slot: (_b, c) =>
          c === null || c.requests === 0
            ? null
            : { events: c.countAbove(thresholdUs), trials: c.requests, p0, p1: [p1], canaryRequests: c.requests },
        rates: {
          trialsPerS: canary.requests / seconds(canary),
          p0,
          observed: canary.requests > 0 ? shareAbove(canary.quantileUs, thresholdUs) : Number.NaN,
        },
        charts: [{ tuning: `${pct(p1)} of requests slower than ${ms(thresholdUs)}`, p1 }],
        observed: canary.quantileUs(quantile) / 1000,
        threshold: thresholdUs / 1000,
        latencyThresholdMs: thresholdUs / 1000,
        baselineCounts: {
          events: baseline.requests > 0 ? Math.round(shareAbove(baseline.quantileUs, thresholdUs) * baseline.requests) : 0,
          trials: baseline.requests,
        },
      };
    },
  };
}

/** The rows, in {@link SEQUENTIAL_CHECKS} order. */
export const CHECK_TABLE: readonly CheckRow[] = [
  relativeLatency('latency_p50_relative', 0.5, (t) => t.latency.relativeP50),
  relativeLatency('latency_p95_relative', 0.95, (t) => t.latency.relativeP95),
  relativeLatency('latency_p99_relative', 0.99, (t) => t.latency.relativeP99),
  {
    name: 'error_ratio_relative',
    unit: 'ratio',
    needsBaseline: true,
    charts: 2,
    threshold: (t) => t.errors.relativeRatio,
    statistic: "canary's share of both versions' errors, conditional on them",
    model(t, baseline, canary) {
      const { relativeRatio: ratio, baselineFloor: floor } = t.errors;
      // The chart tuned for ratio² breaks even at about `ratio`; the one tuned for ratio³ serves gross regressions.
      const tunings = [ratio ** 2, ratio ** 3];
      // A window's baseline below the floor is topped up to it, in every slot by the same share of its requests; a slot
      // with no baseline error is not topped up when the window's rate is above the floor (its zero is sampling noise).
      const deficit = Math.max(0, floor - (baseline.requests > 0 ? baseline.errors / baseline.requests : 0));
      const flooredErrors = (b: { errors: number; requests: number }): number => b.errors + deficit * b.requests;
      const baselineErrors = flooredErrors(baseline);
      const trials = canary.errors + baselineErrors;
      const p0 = conditionalShare(1, canary.requests, baseline.requests);
      const charts = tunings.map((r) => ({
        tuning: `${round(r)} x the baseline's error ratio`,
        p1: conditionalShare(r, canary.requests, baseline.requests),
      }));
      const baselineRatio = Math.max(baseline.errorRatio, floor);
      return {
        rule: `canary's share of the errors: ${pct(p0)} if its error ratio equals the baseline's, ${charts.map((c) => `${pct(c.p1)} if ${c.tuning}`).join(', ')} (break-even about ${ratio} x)`,
        slot(b, c) {
          if (b === null || c === null || b.requests === 0 || c.requests === 0) return null;
          const floored = flooredErrors(b);
          return {
            events: c.errors,
            trials: c.errors + floored,
            p0: conditionalShare(1, c.requests, b.requests),
            p1: tunings.map((r) => conditionalShare(r, c.requests, b.requests)),
            canaryRequests: c.requests,
          };
        },
        rates: { trialsPerS: trials / seconds(canary), p0, observed: trials > 0 ? canary.errors / trials : Number.NaN },
        charts,
        observed: canary.errorRatio,
        threshold: Math.min(1, ratio * baselineRatio),
        latencyThresholdMs: null,
      };
    },
  },
  absoluteLatency('latency_p50_absolute', 0.5, (t) => t.latency.absoluteP50Us),
  absoluteLatency('latency_p95_absolute', 0.95, (t) => t.latency.absoluteP95Us),
  absoluteLatency('latency_p99_absolute', 0.99, (t) => t.latency.absoluteP99Us),
  {
    name: 'error_ratio_absolute',
    unit: 'ratio',
    needsBaseline: false,
    charts: 1,
    threshold: (t) => t.errors.absoluteRatio,
    statistic: "canary's error ratio against the absolute line",
    model(t, baseline, canary) {
      const line = t.errors.absoluteRatio;
      const p0 = clampRate(line / Math.SQRT2);
      const p1 = clampRate(line * Math.SQRT2);
      return {
        rule: `canary error ratio: break-even at ${pct(line)} (H0 ${pct(p0)}, H1 ${pct(p1)})`,
        slot: (_b, c) =>
          c === null || c.requests === 0 ? null : { events: c.errors, trials: c.requests, p0, p1: [p1], canaryRequests: c.requests },
        rates: { trialsPerS: canary.requests / seconds(canary), p0, observed: canary.errorRatio },
        charts: [{ tuning: `an error ratio of ${pct(p1)}`, p1 }],
        observed: canary.errorRatio,
        threshold: line,
        latencyThresholdMs: null,
        baselineCounts: { events: baseline.errors, trials: baseline.requests },
      };
    },
  },
  {
    name: 'throughput',
    unit: 'ratio',
    needsBaseline: true,
    charts: 1,
    threshold: (t) => t.throughputDrop,
    statistic: "canary's share of all requests against the flag's",
    model(t, baseline, canary, flagPercent) {
      if (flagPercent === null || !(flagPercent > 0 && flagPercent < 100))
        return 'the flag gives no share between 0 and 100 % to compare with';
      const p0 = flagPercent / 100;
      const p1 = clampRate(p0 * (1 - t.throughputDrop));
      const total = baseline.requests + canary.requests;
      return {
        rule: `canary's share of requests: ${pct(p0)} from the flag, ${pct(p1)} after a ${pct(t.throughputDrop)} drop`,
        slot: (b, c) => {
          const trials = (b?.requests ?? 0) + (c?.requests ?? 0);
          return trials === 0 ? null : { events: c?.requests ?? 0, trials, p0, p1: [p1], canaryRequests: c?.requests ?? 0 };
        },
        rates: { trialsPerS: total / seconds(canary), p0, observed: total > 0 ? canary.requests / total : Number.NaN },
        charts: [{ tuning: `a ${pct(t.throughputDrop)} drop`, p1 }],
        observed: total > 0 ? canary.requests / total : Number.NaN,
        threshold: p1,
        latencyThresholdMs: null,
      };
    },
  },
];

/** The rows whose threshold is not 0 (the checks that run). */
export function enabledChecks(t: CheckThresholds): CheckRow[] {
  return CHECK_TABLE.filter((row) => row.threshold(t) > 0);
}
