/** Hand-made window snapshots for judge and controller tests. */
import { DEFAULT_JUDGE_POLICY, type JudgePolicy } from '../../src/core/judge.ts';

/** Thresholds only, with the 0.5 % baseline floor the threshold cases were written for. */
export const THRESHOLDS_ONLY: JudgePolicy = {
  ...DEFAULT_JUDGE_POLICY,
  errors: { ...DEFAULT_JUDGE_POLICY.errors, baselineFloor: 0.005 },
  statistics: { ...DEFAULT_JUDGE_POLICY.statistics, enabled: false },
};

/**
 * A quantile function (q 0..1 -> µs) through (0, 0), (0.5, p50), (0.95, p95), (0.99, p99), (1, 1.2 x p99), linear
 * between: what a hand-made snapshot offers the tests that read quantiles. NaN figures give NaN everywhere.
 */
export function piecewiseQuantile(p50Us: number, p95Us: number, p99Us: number): (q: number) => number {
  const points: Array<[number, number]> = [
    [0, 0],
    [0.5, p50Us],
    [0.95, p95Us],
    [0.99, p99Us],
    [1, 1.2 * p99Us],
  ];
  return (q) => {
    for (let i = 1; i < points.length; i++) {
      const [q1, v1] = points[i]!;
      const [q0, v0] = points[i - 1]!;
      if (q <= q1) return v0 + ((v1 - v0) * (q - q0)) / (q1 - q0);
    }
    return 1.2 * p99Us;
  };
}
