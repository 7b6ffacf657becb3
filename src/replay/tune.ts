/**
 * `canary-gate tune`: replays recordings under a grid of policies and counts, per setting, the false rollbacks (a
 * recording labelled healthy that gets rolled back) and the missed ones (a recording labelled regressed that does
 * not), with the median time to the rollback on the regressed ones.
 */
import type { JudgePolicy } from '../core/judge.ts';
import type { Recording } from './recording.ts';
import { replay, type ReplayPolicy } from './replay.ts';

/** One point of the grid; every field overrides the base policy. */
export interface TuneSetting {
  readonly statistics: boolean;
  readonly relativeP95: number;
  readonly relativeErrorRatio: number;
  readonly consecutiveBreaches: number;
}

export interface TuneRow extends TuneSetting {
  readonly falseRollbacks: number;
  readonly missedRollbacks: number;
  /** Median seconds from the recording's start to the rollback over the regressed recordings rolled back; null if none. */
  readonly medianDetectionS: number | null;
}

/** The grid swept by default: statistics on and off, three latency and error ratios, three streak lengths. */
export function defaultGrid(): TuneSetting[] {
  const grid: TuneSetting[] = [];
  for (const statistics of [true, false]) {
    for (const relativeP95 of [1.25, 1.5, 2]) {
      for (const relativeErrorRatio of [1.5, 2, 3]) {
        for (const consecutiveBreaches of [1, 3, 5]) grid.push({ statistics, relativeP95, relativeErrorRatio, consecutiveBreaches });
      }
    }
  }
  return grid;
}

/** The replay policy of a setting on top of `base`. */
export function policyOf(base: ReplayPolicy, s: TuneSetting): ReplayPolicy {
  const judge: JudgePolicy = {
    ...base.judge,
    latency: { ...base.judge.latency, relativeP95: s.relativeP95 },
    errors: { ...base.judge.errors, relativeRatio: s.relativeErrorRatio },
    statistics: { ...base.judge.statistics, enabled: s.statistics },
  };
  return { ...base, judge, consecutiveBreaches: s.consecutiveBreaches };
}

/**
 * Sweeps `grid` over the recordings.
 * @returns one row per setting, best first: fewest false plus missed rollbacks, then fastest median detection
 */
export function tune(
  base: ReplayPolicy,
  healthy: readonly Recording[],
  regressed: readonly Recording[],
  grid: readonly TuneSetting[] = defaultGrid(),
): TuneRow[] {
  const rows = grid.map((setting): TuneRow => {
    const policy = policyOf(base, setting);
    const falseRollbacks = healthy.filter((r) => replay(r, policy).decision !== null).length;
    const detections = regressed
      .map((r) => replay(r, policy).rollbackAfterS)
      .filter((s): s is number => s !== null)
      .sort((a, b) => a - b);
    const medianDetectionS = detections.length === 0 ? null : detections[Math.floor((detections.length - 1) / 2)]!;
    return { ...setting, falseRollbacks, missedRollbacks: regressed.length - detections.length, medianDetectionS };
  });
  return rows.sort(
    (a, b) =>
      a.falseRollbacks + a.missedRollbacks - (b.falseRollbacks + b.missedRollbacks) ||
      (a.medianDetectionS ?? Infinity) - (b.medianDetectionS ?? Infinity),
  );
}
